import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NormalizedResult } from "../../src/ingestion/normalize";
import type { ServiceContext } from "../../src/services/context";
import { storeIngestion } from "../../src/services/ingestion";
import { recomputeRepository, rescore, rescoreQuery } from "../../src/services/scoring/rescore";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase, workerDb } from "./db-support.ts";

/**
 * The scoring service against a real database (embedded PGlite, or PostgreSQL with DATABASE_URL), fed
 * through the real ingestion service: the incremental path (the test cases each upload touched) and the full
 * recompute give the same rows for the same data and asOf; the classes come out as the model says.
 */
let database: TestDatabase;
let db: ReturnType<typeof workerDb>;

beforeAll(async () => {
  database = await migratedDatabase();
  db = workerDb(database);
});
afterAll(async () => {
  await database?.drop();
});

const START = Date.parse("2026-11-01T08:00:00Z");
const HOUR = 3_600_000;
const AS_OF = new Date(START + 40 * 6 * HOUR);
const sha = (n: number) => n.toString(16).padStart(40, "0");

type Outcome = "pass" | "fail" | "retry" | "skip";
/** One simulated CI run: which commit, when, and each named test's outcome. */
interface SimRun {
  commit: number;
  at: number;
  outcomes: Record<string, Outcome>;
}

const ctxAt = (ms: number): ServiceContext => ({ db, now: () => new Date(ms) });

async function newRepo(): Promise<string> {
  const result = await db.execute<{ id: string }>(
    sql`insert into repos (owner, name) values (${`scoring-${randomUUID().slice(0, 8)}`}, 'repo') returning id`,
  );
  return result.rows[0].id;
}

async function store(repoId: string, run: SimRun, index: number): Promise<string> {
  const startedAt = new Date(run.at).toISOString();
  const results: NormalizedResult[] = Object.entries(run.outcomes).map(([name, outcome]) => ({
    path: "src/scoring.test.ts",
    name,
    status: outcome === "retry" ? "pass" : outcome,
    startedAt,
    durationMs: 5,
    failureDetails: outcome === "fail" ? "AssertionError" : null,
    tags: [],
    metadata: null,
    rerunCount: outcome === "retry" ? 1 : 0,
    suite: null,
  }));
  const outcome = await storeIngestion(ctxAt(run.at + 60_000), {
    repoId,
    idempotencyKey: `run-${index}`,
    commitSha: sha(run.commit),
    runId: `ci-${index}`,
    framework: "vitest",
    branch: "main",
    pullRequest: null,
    environment: null,
    environmentHash: null,
    metadata: null,
    scheme: "v2",
    secretId: randomUUID(),
    keyId: "k",
    payloadSha256: `sha-${index}`,
    results,
    userAgent: null,
    ipAddress: null,
  });
  if (outcome.kind !== "stored") throw new Error(`upload ${index}: ${outcome.kind}`);
  return outcome.response.ingestionId;
}

/**
 * 30 CI runs over ~8 days, 12 tests: most stable; `flaky` fails now and then and passes on the same commit;
 * `retried` passes after a retry twice; `broken` fails on every commit from run 26 on; run 12 is an
 * infrastructure outage (10 of 12 fail); every third run skips the `partial-*` tests (uploads touch
 * different sets); a few runs of a commit repeat it.
 */
function history(): SimRun[] {
  const runs: SimRun[] = [];
  let commit = 1;
  for (let i = 0; i < 30; i++) {
    if (i % 3 !== 1) commit += 1; // two runs on some commits
    const outcomes: Record<string, Outcome> = {};
    for (let t = 0; t < 7; t++) outcomes[`stable-${t}`] = "pass";
    outcomes.flaky = [4, 7, 19].includes(i) ? "fail" : "pass";
    outcomes.retried = [9, 22].includes(i) ? "retry" : "pass";
    outcomes.broken = i >= 26 ? "fail" : "pass";
    if (i % 3 !== 2) {
      outcomes["partial-a"] = "pass";
      outcomes["partial-b"] = "pass";
    }
    if (i === 12) for (const name of Object.keys(outcomes).slice(0, 10)) outcomes[name] = "fail";
    runs.push({ commit, at: START + i * 6 * HOUR, outcomes });
  }
  return runs;
}

type Row = Record<string, unknown>;
async function scoreRows(repoId: string): Promise<Row[]> {
  const result = await db.execute<Row>(sql`
    select tc.name, fs.id, fs.test_case_id, fs.repo_id, fs.window_n, fs.runs_considered, fs.pass_rate, fs.volatility,
      fs.recency_fail, fs.clustering, fs.score, fs.class, fs.first_flaky_at, fs.last_flaky_at, fs.ml_prediction_data
    from flake_scores fs join test_cases tc on tc.id = fs.test_case_id
    where fs.repo_id = ${repoId} order by tc.name`);
  return result.rows;
}

describe("flake scoring", () => {
  let repoId: string;
  let incremental: Row[];
  const byName = (rows: Row[]) => Object.fromEntries(rows.map((r) => [r.name as string, r]));

  beforeAll(async () => {
    repoId = await newRepo();
    for (const [index, run] of history().entries()) {
      const ingestionId = await store(repoId, run, index);
      // The incremental path: only the test cases this upload touched, as the upload batch will do.
      await rescore(ctxAt(run.at + 120_000), repoId, { ingestionId }, AS_OF);
    }
    // An upload that never completed: its failures must not count.
    await db.execute(sql`
      with ing as (
        insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
          tests_failed, tests_skipped, payload_sha256, response, received_at)
        values (${repoId}, 'abandoned', ${sha(999)}, 'ci-abandoned', 'vitest', 'v2', 1, 1, 0, 'x', '{}',
          ${new Date(START).toISOString()})
        returning id, received_at)
      insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, created_at)
      select ${repoId}, tc.id, ing.id, ${sha(999)}, 'ci-abandoned', 'fail', ${new Date(START + 29 * 6 * HOUR).toISOString()},
        ing.received_at
      from ing cross join test_cases tc where tc.repo_id = ${repoId} and tc.name = 'stable-0'`);
    await rescore(ctxAt(AS_OF.getTime()), repoId, { testCaseIds: [] }, AS_OF);
    incremental = await scoreRows(repoId);
  });

  it("gives the same rows from the incremental path and a full recompute, and the recompute is idempotent", async () => {
    expect(incremental).toHaveLength(12);
    const summary = await recomputeRepository(ctxAt(AS_OF.getTime() + HOUR), repoId, AS_OF);
    expect(summary.scored).toBe(12);
    const full = await scoreRows(repoId);
    expect(full).toEqual(incremental);
    await recomputeRepository(ctxAt(AS_OF.getTime() + 2 * HOUR), repoId, AS_OF);
    expect(await scoreRows(repoId)).toEqual(full);
  });

  it("classes each test as the model says and explains why", async () => {
    const rows = byName(incremental);
    for (let t = 0; t < 7; t++) expect(rows[`stable-${t}`].class, `stable-${t}`).toBe("stable");
    expect(rows["partial-a"].class).toBe("stable");
    expect(rows.flaky.class).toMatch(/^(flaky|highly_flaky)$/);
    expect(rows.retried.class).toMatch(/^(flaky|highly_flaky)$/);
    expect(rows.broken.class).toBe("broken");
    // The incomplete upload's failure is not among stable-0's runs.
    expect(rows["stable-0"].runs_considered).toBe(30);
    expect(rows["partial-a"].runs_considered).toBe(20);
    const flaky = rows.flaky.ml_prediction_data as Record<string, Record<string, unknown>>;
    expect(flaky.evidence).toMatchObject({ contradictions: 3, outageRuns: 1, outageFailuresIgnored: 1 });
    expect(flaky.evidence.firstFlakyCommit).toBe(sha(4));
    expect(rows.flaky.first_flaky_at).not.toBeNull();
    expect((rows.retried.ml_prediction_data as Record<string, Record<string, unknown>>).evidence).toMatchObject({
      retryRecoveries: 2,
    });
    expect(String((rows.broken.ml_prediction_data as Record<string, unknown>).reason)).toMatch(/broken/);
    // The outage failed stable-1 too; it is discounted, so stable-1 scores like its peers.
    expect(rows["stable-1"].score).toBe(rows["stable-5"].score);
    expect(Number(rows.flaky.score)).toBeGreaterThan(Number(rows["stable-1"].score));
  });

  it("uses the repository's weights and threshold, and moves with asOf", async () => {
    await db.execute(sql`
      insert into repository_configs (repo_id, scoring_threshold, config)
      values (${repoId}, 1, '{"scoringWeights": {"passRate": 0, "volatility": 0, "recencyFail": 1, "clustering": 0}}')`);
    const later = new Date(AS_OF.getTime() + 28 * 24 * HOUR);
    const rows = await rescore(ctxAt(later.getTime()), repoId, "all", later);
    const flaky = rows.find((r) => r.class === "highly_flaky");
    expect(flaky).toBeDefined();
    const stored = byName(await scoreRows(repoId));
    const factors = (stored.flaky.ml_prediction_data as { factors: Record<string, { weight: number }> }).factors;
    expect(factors.recencyFail.weight).toBe(1);
    // Four weeks on, the last failure's recency has decayed through two half-lives.
    expect(Number(stored.flaky.recency_fail)).toBeLessThan(
      0.25 * Number(byName(incremental).flaky.recency_fail) + 1e-6,
    );
  });

  it("is one statement a caller can put in its own batch", async () => {
    const query = rescoreQuery(repoId, "all", AS_OF);
    const [result] = await db.batch([db.execute(query)]);
    expect(result.rows).toHaveLength(12);
  });
});
