import { sql } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { QUARANTINED_CLASSES } from "../flaky-reads";
import { ownersOfPath } from "../owners";
import type { CheckRunInput } from "./client";

/**
 * The check run the App writes on a pull request's head commit after ingesting its workflow run: which
 * failures are known flakes (with score and owners), which are broken tests, and which are not known flaky —
 * so a developer sees "this failure is a known flake" without leaving GitHub. Scores are those the upload
 * itself just computed (scoring runs in the upload's last batch).
 */

export const CHECK_RUN_NAME = "anchorpipe: flaky tests";

/** Rows listed per section; GitHub caps a check run's summary and text at 65,535 characters each. */
const LISTED = 50;

export interface FailedTest {
  path: string;
  name: string;
  score: number | null;
  class: string | null;
  owners: string[];
  /** Whether the test failed in an earlier upload too. */
  failedBefore: boolean;
}

/** The failed tests of these ingestions (one row per test), with their scores and owners. */
export async function failedTests(
  ctx: ServiceContext,
  input: { repoId: string; ingestionIds: string[] },
): Promise<FailedTest[]> {
  if (input.ingestionIds.length === 0) return [];
  const ids = sql`string_to_array(${input.ingestionIds.join(",")}, ',')::uuid[]`;
  const result = await ctx.db.execute<{
    path: string;
    name: string;
    score: number | null;
    class: string | null;
    owners: string[];
    failed_before: boolean;
  }>(sql`
    with failed as (
      select distinct r.test_case_id from test_runs r
      where r.repo_id = ${input.repoId} and r.ingestion_id = any(${ids}) and r.status = 'fail'
    )
    select tc.path, tc.name, fs.score::int as score, fs.class::text as class,
      ${ownersOfPath(sql`tc.repo_id`, sql`tc.path`)} as owners,
      exists (
        select 1 from test_runs p
        where p.test_case_id = tc.id and p.status = 'fail' and p.ingestion_id <> all(${ids})
      ) as failed_before
    from failed join test_cases tc on tc.id = failed.test_case_id
    left join flake_scores fs on fs.test_case_id = tc.id
    order by fs.score desc nulls last, tc.path, tc.name`);
  return result.rows.map((row) => ({
    path: row.path,
    name: row.name,
    score: row.score,
    class: row.class,
    owners: row.owners,
    failedBefore: row.failed_before,
  }));
}

/**
 * The check run for these failures. Its conclusion: success with no failure, neutral when every failure is a
 * known flake (a branch protection rule may require this check instead of the flaky job), failure otherwise.
 */
export function checkRunFor(input: {
  headSha: string;
  externalId: string;
  failures: FailedTest[];
  testsRun: number;
}): CheckRunInput {
  const flaky = input.failures.filter(
    (test) => test.class !== null && QUARANTINED_CLASSES.includes(test.class as never),
  );
  const broken = input.failures.filter((test) => test.class === "broken");
  const other = input.failures.filter((test) => !flaky.includes(test) && !broken.includes(test));
  const failed = input.failures.length;
  const base = {
    name: CHECK_RUN_NAME,
    headSha: input.headSha,
    status: "completed" as const,
    externalId: input.externalId,
  };
  if (failed === 0) {
    return {
      ...base,
      conclusion: "success",
      output: { title: "No test failures", summary: `${plural(input.testsRun, "test")} ran; none failed.` },
    };
  }
  const title =
    other.length + broken.length === 0
      ? `${plural(failed, "failure")}, all known flaky`
      : `${plural(other.length + broken.length, "failure")} not known flaky, ${flaky.length} known flaky`;
  const sections = [
    section("Not known flaky", "These failures are not explained by a known flake: look at them.", other, false),
    section("Broken", "These tests fail consistently on good code: a real failure, not a flake.", broken, true),
    section("Known flaky", "These tests are known to fail intermittently; the failure is likely noise.", flaky, true),
  ].filter(Boolean);
  const summary = [
    `${plural(input.testsRun, "test")} ran, ${failed} failed: **${flaky.length} known flaky**, ${broken.length} broken, ${other.length} not known flaky.`,
    ...sections,
  ].join("\n\n");
  return {
    ...base,
    conclusion: other.length + broken.length === 0 ? "neutral" : "failure",
    output: { title, summary },
  };
}

function section(heading: string, lead: string, tests: FailedTest[], withScore: boolean): string {
  if (tests.length === 0) return "";
  const rows = tests.slice(0, LISTED).map((test) => {
    const detail = withScore
      ? `${test.score ?? "–"} (${test.class})`
      : test.failedBefore
        ? `failed before${test.score === null ? "" : `; score ${test.score}`}`
        : "first failure";
    return `| ${cell(test.path)} | ${cell(test.name)} | ${detail} | ${test.owners.map(cell).join(", ") || "–"} |`;
  });
  const more = tests.length > LISTED ? [`\n…and ${tests.length - LISTED} more.`] : [];
  const header = withScore ? "| Path | Test | Score | Owners |" : "| Path | Test | History | Owners |";
  return [`### ${heading} (${tests.length})`, lead, "", header, "| --- | --- | --- | --- |", ...rows, ...more].join(
    "\n",
  );
}

/** Test names are CI input: one line, no table breaks, no markup, bounded. */
function cell(text: string): string {
  const flat = text.replace(/[\r\n\t]+/g, " ");
  const short = flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
  return `\`${short.replace(/`/g, "'").replace(/\|/g, "\\|")}\``;
}

function plural(count: number, noun: string): string {
  return `${count.toLocaleString("en-US")} ${noun}${count === 1 ? "" : "s"}`;
}
