import { sql } from "drizzle-orm";
import { flakeClass } from "../db/schema";
import type { ServiceContext } from "./context";
import { ownersOfPath } from "./owners";
import { testRuns } from "./test-reads";

/**
 * Reads of the flake scores (spec/api.md, "Flaky tests"): the ranked list, one test's score with its
 * explanation, and the quarantine list CI fetches. Everything comes from flake_scores (written by
 * src/services/scoring/rescore.ts) joined to test_cases; the numbers of the explanation are read from its
 * ml_prediction_data as JSON values, never cast from text, so an odd document cannot fail a read.
 */

/** The database's own enum: a class the model gains is filterable as soon as the schema has it. */
export const FLAKE_CLASSES = flakeClass.enumValues;
export type FlakeClass = (typeof FLAKE_CLASSES)[number];

/** What CI should skip or tolerate: flaky tests; never broken (a real failure) or suspect (no proof yet). */
export const QUARANTINED_CLASSES: readonly FlakeClass[] = ["flaky", "highly_flaky"];

/** The quarantine list's cap: the tests with the highest scores are kept beyond it. */
export const QUARANTINE_MAX_TESTS = 5000;

/** Days of runs that `sort=impact` counts (see IMPACT_DESCRIPTION). */
export const IMPACT_DAYS = 7;

export const IMPACT_DESCRIPTION =
  `\`impact\` = the failure probability's estimate × the test's runs per day (its runs of completed uploads, ` +
  `skips excluded, in the ${IMPACT_DAYS} days up to the time its score was computed, / ${IMPACT_DAYS}): the CI ` +
  "failures per day the test is expected to cause. A test that fails 30% of runs but runs once a week ranks " +
  "below one that fails 2% of 200 daily runs. It moves only when the test is rescored, like the score.";

export type FlakySort = "score" | "impact";

export interface FlakyTestItem {
  testId: string;
  path: string;
  name: string;
  suite: string | null;
  framework: string;
  class: FlakeClass;
  score: number;
  failureProbability: { estimate: number | null; lower: number | null; upper: number | null };
  evidence: { runs: number; contradictions: number; retryRecoveries: number };
  owners: string[];
  firstFlakyCommit: string | null;
  lastRunAt: Date | null;
}

type ItemRow = Omit<FlakyTestItem, "failureProbability" | "evidence" | "lastRunAt" | "firstFlakyCommit"> & {
  runs: number;
  probability: unknown;
  evidence: unknown;
  lastRunAt: string | null;
  sortKey: string;
};

const numberOr = <T>(value: unknown, fallback: T): number | T =>
  typeof value === "number" && Number.isFinite(value) ? value : fallback;

const field = (document: unknown, key: string): unknown =>
  document !== null && typeof document === "object" && !Array.isArray(document)
    ? (document as Record<string, unknown>)[key]
    : undefined;

function itemView(row: ItemRow): FlakyTestItem & { sortKey: string } {
  const commit = field(row.evidence, "firstFlakyCommit");
  return {
    testId: row.testId,
    path: row.path,
    name: row.name,
    suite: row.suite,
    framework: row.framework,
    class: row.class,
    score: row.score,
    failureProbability: {
      estimate: numberOr(field(row.probability, "estimate"), null),
      lower: numberOr(field(row.probability, "lower"), null),
      upper: numberOr(field(row.probability, "upper"), null),
    },
    evidence: {
      runs: row.runs,
      contradictions: numberOr(field(row.evidence, "contradictions"), 0),
      retryRecoveries: numberOr(field(row.evidence, "retryRecoveries"), 0),
    },
    owners: row.owners ?? [],
    firstFlakyCommit: typeof commit === "string" ? commit : null,
    lastRunAt: row.lastRunAt === null ? null : new Date(row.lastRunAt),
    sortKey: row.sortKey,
  };
}

/** The score's own time: its `asOf` when it is a well-formed UTC timestamp, else when the row was written. */
const scoredAt = sql`case when fs.ml_prediction_data->>'asOf' ~ '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,6})?Z$'
  then (fs.ml_prediction_data->>'asOf')::timestamptz else fs.updated_at end`;

const estimate = sql`case when jsonb_typeof(fs.ml_prediction_data->'failureProbability'->'estimate') = 'number'
  then (fs.ml_prediction_data->'failureProbability'->'estimate')::float8 else 0 end`;

/**
 * Expected CI failures per day (IMPACT_DESCRIPTION), rounded so that the cursor holds it exactly; 0 for a
 * test without a score.
 */
const impact = sql`case when fs.test_case_id is null then 0::numeric else round((${estimate} * (
    select count(*) from test_runs tr
    join ingestions i on i.id = tr.ingestion_id and i.completed_at is not null
    where tr.test_case_id = fs.test_case_id and tr.repo_id = fs.repo_id and tr.status <> 'skip'
      and tr.started_at <= ${scoredAt} and tr.started_at > ${scoredAt} - make_interval(days => ${IMPACT_DAYS}::int)
  ) / ${IMPACT_DAYS}::float8)::numeric, 6) end`;

/**
 * The ranked list. `sort=score`: score descending, then test id; `sort=impact`: impact descending, then test
 * id. Keyset pagination on (sort value, test id); `after` is the last row's pair. A test not scored yet is
 * `stable` with score 0 (as `getTestScore` answers it), so a list asking for `stable` takes every test case
 * of the repository; any other list starts from the repository's flake_scores rows (by index).
 */
export async function listFlakyTests(
  ctx: ServiceContext,
  repoId: string,
  filter: { classes: readonly FlakeClass[]; owner?: string; pathPrefix?: string },
  sort: FlakySort,
  page: { limit: number; after: [string, string] | null },
): Promise<(FlakyTestItem & { sortKey: string })[]> {
  const key = sort === "score" ? sql`coalesce(fs.score, 0)::numeric` : impact;
  const owners = ownersOfPath(sql`tc.repo_id`, sql`tc.path`);
  const tests = filter.classes.includes("stable")
    ? sql`test_cases tc left join flake_scores fs on fs.test_case_id = tc.id where tc.repo_id = ${repoId}`
    : sql`flake_scores fs join test_cases tc on tc.id = fs.test_case_id and tc.repo_id = fs.repo_id
        where fs.repo_id = ${repoId}`;
  const after = page.after;
  const result = await ctx.db.execute<ItemRow>(sql`
    with ranked as (
      select * from (
        select tc.id as test_case_id, coalesce(fs.score, 0) as score, coalesce(fs.class, 'stable') as class,
          coalesce(fs.runs_considered, 0) as runs_considered, fs.ml_prediction_data, ${key} as sort_key
        from ${tests}
          and coalesce(fs.class, 'stable') = any(string_to_array(${filter.classes.join(",")}, ',')::flake_class[])
          ${filter.pathPrefix === undefined ? sql`` : sql`and starts_with(tc.path, ${filter.pathPrefix})`}
          ${filter.owner === undefined ? sql`` : sql`and ${filter.owner}::text = any(${owners})`}
      ) scored
      ${after ? sql`where (-scored.sort_key, scored.test_case_id) > (-(${after[0]}::numeric), ${after[1]}::uuid)` : sql``}
      order by scored.sort_key desc, scored.test_case_id
      limit ${page.limit}
    )
    select tc.id as "testId", tc.path, tc.name, tc.suite, tc.framework, r.class, r.score,
      r.ml_prediction_data->'failureProbability' as probability, r.ml_prediction_data->'evidence' as evidence,
      r.runs_considered as runs, ${owners} as owners, last_run.started_at as "lastRunAt", r.sort_key::text as "sortKey"
    from ranked r join test_cases tc on tc.id = r.test_case_id
    left join lateral (
      select tr.started_at from test_runs tr
      join ingestions i on i.id = tr.ingestion_id and i.completed_at is not null
      where tr.test_case_id = r.test_case_id and tr.repo_id = ${repoId}
      order by tr.started_at desc limit 1
    ) last_run on true
    order by r.sort_key desc, r.test_case_id`);
  return result.rows.map(itemView);
}

export interface TestScoreView {
  testId: string;
  path: string;
  name: string;
  suite: string | null;
  framework: string;
  owners: string[];
  scored: boolean;
  class: FlakeClass;
  score: number;
  factors: {
    windowN: number;
    runsConsidered: number;
    passRate: number;
    volatility: number;
    recencyFail: number;
    clustering: number;
  } | null;
  firstFlakyAt: Date | null;
  lastFlakyAt: Date | null;
  scoredAt: Date | null;
  explanation: Record<string, unknown>;
  recentRuns: {
    id: string;
    ingestionId: string;
    status: "pass" | "fail" | "skip";
    rerunCount: number;
    commitSha: string;
    branch: string | null;
    durationMs: number | null;
    startedAt: Date;
  }[];
}

export const RECENT_RUNS = 20;

export const NOT_SCORED_REASON = "not scored yet: no completed upload of this test has been scored";

type ScoreRow = {
  testId: string;
  path: string;
  name: string;
  suite: string | null;
  framework: string;
  owners: string[] | null;
  class: FlakeClass | null;
  score: number | null;
  windowN: number | null;
  runsConsidered: number | null;
  passRate: number | null;
  volatility: number | null;
  recencyFail: number | null;
  clustering: number | null;
  firstFlakyAt: string | null;
  lastFlakyAt: string | null;
  scoredAt: string | null;
  explanation: unknown;
};

const dateOrNull = (value: string | null) => (value === null ? null : new Date(value));

/**
 * One test's score, its factor columns, the whole explanation and its last RECENT_RUNS runs; null when the
 * repository has no such test. A test without a score row yet is `stable` with score 0, `scored: false`
 * and an explanation saying so.
 */
export async function getTestScore(ctx: ServiceContext, repoId: string, testId: string): Promise<TestScoreView | null> {
  const [result, runs] = await Promise.all([
    ctx.db.execute<ScoreRow>(sql`
      select tc.id as "testId", tc.path, tc.name, tc.suite, tc.framework,
        ${ownersOfPath(sql`tc.repo_id`, sql`tc.path`)} as owners,
        fs.class, fs.score, fs.window_n as "windowN", fs.runs_considered as "runsConsidered",
        fs.pass_rate as "passRate", fs.volatility, fs.recency_fail as "recencyFail", fs.clustering,
        fs.first_flaky_at as "firstFlakyAt", fs.last_flaky_at as "lastFlakyAt", fs.updated_at as "scoredAt",
        fs.ml_prediction_data as explanation
      from test_cases tc left join flake_scores fs on fs.test_case_id = tc.id
      where tc.repo_id = ${repoId} and tc.id = ${testId}`),
    testRuns(ctx, repoId, testId, { limit: RECENT_RUNS, after: null }),
  ]);
  const row = result.rows[0];
  if (!row) return null;
  const scored = row.class !== null;
  const explanation =
    row.explanation !== null && typeof row.explanation === "object" && !Array.isArray(row.explanation)
      ? (row.explanation as Record<string, unknown>)
      : { reason: scored ? "scored without an explanation" : NOT_SCORED_REASON };
  return {
    testId: row.testId,
    path: row.path,
    name: row.name,
    suite: row.suite,
    framework: row.framework,
    owners: row.owners ?? [],
    scored,
    class: row.class ?? "stable",
    score: row.score ?? 0,
    factors: scored
      ? {
          windowN: row.windowN ?? 0,
          runsConsidered: row.runsConsidered ?? 0,
          passRate: row.passRate ?? 0,
          volatility: row.volatility ?? 0,
          recencyFail: row.recencyFail ?? 0,
          clustering: row.clustering ?? 0,
        }
      : null,
    firstFlakyAt: dateOrNull(row.firstFlakyAt),
    lastFlakyAt: dateOrNull(row.lastFlakyAt),
    scoredAt: dateOrNull(row.scoredAt),
    explanation,
    recentRuns: runs.map((run) => ({
      id: run.id,
      ingestionId: run.ingestionId,
      status: run.status,
      rerunCount: run.rerunCount,
      commitSha: run.commitSha,
      branch: run.branch,
      durationMs: run.durationMs,
      startedAt: run.startedAt,
    })),
  };
}

export type QuarantinedTest = Pick<
  FlakyTestItem,
  "testId" | "path" | "name" | "suite" | "framework" | "class" | "score" | "owners"
> & { reason: string };

/**
 * The tests CI should skip or tolerate (QUARANTINED_CLASSES), by path then name (then framework and id), in
 * byte order (collation "C"), so the list and its ETag are the same on every database. Beyond
 * QUARANTINE_MAX_TESTS the ones with the highest scores are kept and `truncated` says so.
 */
export async function quarantineList(
  ctx: ServiceContext,
  repoId: string,
): Promise<{ tests: QuarantinedTest[]; truncated: boolean }> {
  const result = await ctx.db.execute<QuarantinedTest & { rank: number }>(sql`
    with chosen as (
      select fs.test_case_id, fs.class, fs.score, fs.ml_prediction_data,
        row_number() over (order by fs.score desc, fs.test_case_id) as rank
      from flake_scores fs
      where fs.repo_id = ${repoId}
        and fs.class = any(string_to_array(${QUARANTINED_CLASSES.join(",")}, ',')::flake_class[])
      order by fs.score desc, fs.test_case_id
      limit ${QUARANTINE_MAX_TESTS + 1}
    )
    select tc.id as "testId", tc.path, tc.name, tc.suite, tc.framework, c.class, c.score,
      case when jsonb_typeof(c.ml_prediction_data->'reason') = 'string' then c.ml_prediction_data->>'reason'
        else '' end as reason,
      ${ownersOfPath(sql`tc.repo_id`, sql`tc.path`)} as owners, c.rank::int as rank
    from chosen c join test_cases tc on tc.id = c.test_case_id
    order by tc.path collate "C", tc.name collate "C", tc.framework collate "C", tc.id`);
  const truncated = result.rows.length > QUARANTINE_MAX_TESTS;
  const tests = result.rows
    .filter((row) => row.rank <= QUARANTINE_MAX_TESTS)
    .map(({ rank: _, ...test }) => ({ ...test, owners: test.owners ?? [] }));
  return { tests, truncated };
}
