/// <reference types="vite/client" />
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { parseReport } from "../../src/ingestion/formats";
import { recomputeRepository } from "../../src/services/scoring/rescore";
import ctrfFlaky from "../fixtures/ctrf/github-test-reporter.json?raw";
import gotestsumRerun from "../fixtures/junit/gotestsum-rerun.xml?raw";
import surefireFlaky from "../fixtures/junit/surefire-flaky.xml?raw";
import { payload, repoWithSecret, serviceContext, testDb, upload } from "./ingestion-support";

/**
 * Retries kept as evidence reach the scores: a report's folded retries (Surefire flaky reruns, gotestsum
 * --rerun-fails, CTRF's retries/flaky) arrive as rerun_count, and the scoring model counts each that
 * finally passed as a retry recovery in flake_scores.
 */
describe("retries in reports reach the flake scores", () => {
  it.each([
    ["junit", "surefire-flaky.xml", surefireFlaky],
    ["junit", "gotestsum-rerun.xml", gotestsumRerun],
    ["ctrf", "github-test-reporter.json", ctrfFlaky],
  ])("%s %s", async (format, _file, content) => {
    const recovered = parseReport(format, content).results.filter((r) => r.status === "pass" && r.rerunCount > 0);
    expect(recovered.length).toBeGreaterThan(0);
    const repo = await repoWithSecret("retries-to-scores");
    const { tests: _, ...rest } = payload(repo.repoId, { framework: "unknown" });
    const res = await upload({ ...rest, reports: [{ format, content }] }, repo);
    expect(res.status, await res.clone().text()).toBe(200);
    await recomputeRepository(serviceContext(), repo.repoId, new Date(Date.now() + 60_000));
    const scores = await testDb().execute<{ name: string; recoveries: number }>(sql`
      select tc.name, (fs.ml_prediction_data->'evidence'->>'retryRecoveries')::int as recoveries
      from flake_scores fs join test_cases tc on tc.id = fs.test_case_id
      where fs.repo_id = ${repo.repoId} and (fs.ml_prediction_data->'evidence'->>'retryRecoveries')::int > 0`);
    expect(scores.rows.map((r) => r.name).sort()).toEqual(recovered.map((r) => r.name).sort());
  });
});
