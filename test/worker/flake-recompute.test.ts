import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { RECOMPUTE_MAX_REPOS } from "../../src/jobs/flake-recompute";
import { payload, repoWithSecret, testDb, upload } from "./ingestion-support";

/**
 * The scheduled full recompute through the Worker's scheduled handler, on runs stored by real uploads.
 *
 * The suite's database is shared with the other test files, so the job also recomputes their repositories
 * (each invocation takes the most overdue `RECOMPUTE_MAX_REPOS`): the test triggers it until this file's
 * repository has been done, and looks only at that repository's rows.
 */
const CRON = "41 * * * *";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const sha = (n: number) => n.toString(16).padStart(40, "0");

type Event = Record<string, unknown> & { event: string };

/**
 * One invocation of the cron's scheduled handler; its log lines. Another file's repository may fail (say, its
 * test cases deleted under the recompute), which fails the invocation: that is logged, and tolerated here.
 */
async function trigger(scheduledTime: number): Promise<Event[]> {
  const lines: string[] = [];
  const info = vi.spyOn(console, "log").mockImplementation((line: string) => lines.push(line));
  const error = vi.spyOn(console, "error").mockImplementation((line: string) => lines.push(line));
  try {
    await worker.scheduled(createScheduledController({ cron: CRON, scheduledTime }), env);
  } catch {
    // The failure is in the log lines.
  } finally {
    info.mockRestore();
    error.mockRestore();
  }
  return lines.map((line) => JSON.parse(line) as Event);
}

const recomputed = (events: Event[], repoId: string) =>
  events.some((e) => e.event === "job.flake_recompute.repo" && e.repoId === repoId);

/** Triggers the job at `scheduledTime` until `repoId` was recomputed (or nothing is due); its log lines. */
async function recomputeUntilDone(repoId: string, scheduledTime: number): Promise<Event[]> {
  const events: Event[] = [];
  for (let i = 0; i < 200; i++) {
    const batch = await trigger(scheduledTime);
    events.push(...batch);
    const summary = batch.find((e) => e.event === "job.flake_recompute");
    expect(summary, "the job logs a summary").toBeDefined();
    expect(summary?.recomputed).toBeLessThanOrEqual(RECOMPUTE_MAX_REPOS);
    expect(batch.filter((e) => e.event === "job.flake_recompute.repo_failed" && e.repoId === repoId)).toEqual([]);
    if (recomputed(batch, repoId)) break;
    if (summary?.remaining === 0) break;
  }
  return events;
}

type Row = Record<string, unknown>;
async function scoreRows(repoId: string): Promise<Row[]> {
  const result = await testDb().execute<Row>(sql`
    select tc.name, fs.test_case_id, fs.window_n, fs.runs_considered, fs.pass_rate, fs.volatility, fs.recency_fail,
      fs.clustering, fs.score, fs.class, fs.first_flaky_at, fs.last_flaky_at, fs.ml_prediction_data,
      (extract(epoch from fs.updated_at) * 1000)::float8 as updated_ms
    from flake_scores fs join test_cases tc on tc.id = fs.test_case_id
    where fs.repo_id = ${repoId} order by tc.name`);
  return result.rows;
}
const byName = (rows: Row[]) => Object.fromEntries(rows.map((r) => [r.name as string, r]));

afterEach(() => {
  vi.restoreAllMocks();
});

describe("scheduled flake recompute", () => {
  it("recomputes a repository as of the scheduled time, idempotently, and decay moves with it", async () => {
    const repo = await repoWithSecret("flake-recompute");
    // Eight CI runs 12 hours apart, ending two days ago; runs 2k and 2k+1 share a commit. `flaky` fails on runs 3
    // and 6, each time on a commit where it also passed: two contradictions.
    const start = Math.floor(Date.now() / HOUR) * HOUR - 6 * DAY;
    for (let i = 0; i < 8; i++) {
      const startedAt = new Date(start + i * 12 * HOUR).toISOString();
      const tests = ["stable-a", "stable-b", "stable-c", "flaky"].map((name) => ({
        path: "src/recompute.test.ts",
        name,
        status: name === "flaky" && (i === 3 || i === 6) ? "fail" : "pass",
        startedAt,
        durationMs: 5,
      }));
      const body = payload(repo.repoId, { commit_sha: sha(1 + Math.floor(i / 2)), run_id: `recompute-${i}` }, tests);
      const res = await upload(body, repo);
      expect(res.status, await res.clone().text()).toBe(200);
    }

    // T: a scheduled minute of the cron more than a day after the uploads (scores they wrote are then a day old).
    const T = Math.floor(Date.now() / HOUR) * HOUR + 25 * HOUR + 41 * 60_000;
    const events = await recomputeUntilDone(repo.repoId, T);
    const done = events.find((e) => e.event === "job.flake_recompute.repo" && e.repoId === repo.repoId);
    expect(done, "this repository was recomputed").toMatchObject({ scored: 4, broken: 0 });

    const first = await scoreRows(repo.repoId);
    expect(first).toHaveLength(4);
    for (const row of first) {
      // As of the scheduled time, never the clock: the explanation's asOf and the row's time are T.
      expect((row.ml_prediction_data as { asOf: string }).asOf).toBe(new Date(T).toISOString());
      expect(Number(row.updated_ms)).toBe(T);
      expect(row.runs_considered).toBe(8);
    }
    const rows = byName(first);
    expect(rows.flaky.class).toMatch(/^(flaky|highly_flaky)$/);
    expect((rows.flaky.ml_prediction_data as { evidence: { contradictions: number } }).evidence.contradictions).toBe(2);
    expect(rows["stable-a"].class).toBe("stable");
    const recency = Number(rows.flaky.recency_fail);
    expect(recency).toBeGreaterThan(0);

    // The same scheduled time again: this repository is no longer due, and its rows are untouched.
    const again = await trigger(T);
    expect(recomputed(again, repo.repoId)).toBe(false);
    expect(await scoreRows(repo.repoId)).toEqual(first);

    // A test case without a score makes the repository due again; recomputed at T, it gets the same rows.
    await testDb().execute(sql`
      delete from flake_scores where repo_id = ${repo.repoId}
        and test_case_id = (select id from test_cases where repo_id = ${repo.repoId} and name = 'stable-b')`);
    const redo = await recomputeUntilDone(repo.repoId, T);
    expect(recomputed(redo, repo.repoId)).toBe(true);
    expect(await scoreRows(repo.repoId)).toEqual(first);

    // Thirty days on: the windows are the same runs, the last failure's recency has decayed by 2^(-30/14).
    const later = T + 30 * DAY;
    const moved = await recomputeUntilDone(repo.repoId, later);
    expect(recomputed(moved, repo.repoId)).toBe(true);
    const after = byName(await scoreRows(repo.repoId));
    expect((after.flaky.ml_prediction_data as { asOf: string }).asOf).toBe(new Date(later).toISOString());
    expect(after.flaky.runs_considered).toBe(8);
    const decayed = Number(after.flaky.recency_fail);
    expect(decayed).toBeLessThan(recency);
    expect(decayed / recency).toBeCloseTo(2 ** (-30 / 14), 4);
    // Evidence ages but is still in the window; first_flaky_at is kept.
    expect(after.flaky.first_flaky_at).toEqual(rows.flaky.first_flaky_at);
  }, 180_000);

  it("leaves a repository alone when its scores are less than a day old", async () => {
    const repo = await repoWithSecret("flake-recompute-fresh");
    const startedAt = new Date(Math.floor(Date.now() / HOUR) * HOUR - DAY).toISOString();
    const tests = [{ path: "src/fresh.test.ts", name: "only", status: "pass", startedAt, durationMs: 1 }];
    expect((await upload(payload(repo.repoId, { run_id: "fresh-1" }, tests), repo)).status).toBe(200);
    const T = Math.floor(Date.now() / HOUR) * HOUR + 26 * HOUR + 41 * 60_000;
    await recomputeUntilDone(repo.repoId, T);
    const [row] = await scoreRows(repo.repoId);
    expect(Number(row.updated_ms)).toBe(T);
    // 23 hours later it is not due; 24 hours later it is.
    const soon = await trigger(T + 23 * HOUR);
    expect(recomputed(soon, repo.repoId)).toBe(false);
    await recomputeUntilDone(repo.repoId, T + DAY);
    const [next] = await scoreRows(repo.repoId);
    expect(Number(next.updated_ms)).toBe(T + DAY);
  }, 180_000);
});
