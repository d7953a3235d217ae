import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { SCHEDULE } from "../../src/jobs";
import { flakeRecompute, RECOMPUTE_INTERVAL_MS } from "../../src/jobs/flake-recompute";
import { payload, repoWithSecret, testDb, upload } from "./ingestion-support";

/**
 * The scheduled full recompute through the Worker's scheduled handler, on runs stored by real uploads.
 *
 * The suite's database is shared with the other test files, so the job also recomputes their repositories;
 * the test looks only at its own (and the cron's other jobs are stubbed). The ledger (job_runs) runs a job once per scheduled time, so when this
 * file's repository is not among those one invocation takes, the next try is a millisecond later, and that
 * invocation's scheduled time is the `asOf` the rows must carry.
 */
const CRON = Object.entries(SCHEDULE).find(([, jobs]) => jobs.includes(flakeRecompute))?.[0] as string;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const sha = (n: number) => n.toString(16).padStart(40, "0");

type Event = Record<string, unknown> & { event: string };

/**
 * One invocation of the cron's scheduled handler; its log lines. Another file's
 * repository, may fail the invocation: that is in the log lines, and tolerated here.
 */
async function trigger(scheduledTime: number): Promise<Event[]> {
  // The cron's other jobs (retention, data subject requests) would act on the shared database as of days or
  // weeks ahead: archiving and deleting other files' runs, carrying out their requests. Only the rescoring runs.
  const others = SCHEDULE[CRON]!.filter((job) => job !== flakeRecompute).map((job) =>
    vi.spyOn(job, "run").mockResolvedValue({ outcome: "skipped", note: "stubbed" }),
  );
  const lines: string[] = [];
  const info = vi.spyOn(console, "log").mockImplementation((line: string) => lines.push(line));
  const error = vi.spyOn(console, "error").mockImplementation((line: string) => lines.push(line));
  const warn = vi.spyOn(console, "warn").mockImplementation((line: string) => lines.push(line));
  try {
    await worker.scheduled(createScheduledController({ cron: CRON, scheduledTime }), env);
  } catch {
    // The failure is in the log lines.
  } finally {
    info.mockRestore();
    error.mockRestore();
    warn.mockRestore();
    for (const stub of others) stub.mockRestore();
  }
  return lines.map((line) => JSON.parse(line) as Event);
}

const recomputed = (events: Event[], repoId: string) =>
  events.find((e) => e.event === "job.flake_recompute.repo" && e.repoId === repoId);

/** Triggers the job from `scheduledTime` on (a millisecond later each time) until `repoId` is recomputed. */
async function recomputeFrom(repoId: string, scheduledTime: number): Promise<{ at: number; done: Event }> {
  let last: Event[] = [];
  for (let i = 0; i < 20; i++) {
    const at = scheduledTime + i;
    const events = await trigger(at);
    last = events.filter((e) => e.event === "job.run" || e.event === "job.flake_recompute");
    expect(events.filter((e) => e.event === "job.flake_recompute.repo_failed" && e.repoId === repoId)).toEqual([]);
    const done = recomputed(events, repoId);
    if (done) return { at, done };
  }
  throw new Error(`repository ${repoId} was not recomputed; the last invocation: ${JSON.stringify(last)}`);
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
  it("is scheduled", () => {
    expect(CRON).toBeDefined();
  });

  it("recomputes a repository as of the scheduled time, idempotently, and decay moves with it", async () => {
    const repo = await repoWithSecret("flake-recompute");
    // Eight CI runs 12 hours apart, ending two and a half days ago; runs 2k and 2k+1 share a commit. `flaky`
    // fails on runs 3 and 6, each time on a commit where it also passed: two contradictions.
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

    // A scheduled time two days on: the scores the uploads wrote are then older than the interval.
    const { at: T, done } = await recomputeFrom(repo.repoId, Math.floor(Date.now() / HOUR) * HOUR + 2 * DAY);
    expect(done).toMatchObject({ scored: 4, broken: 0 });

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
    const evidence = (rows.flaky.ml_prediction_data as { evidence: { contradictions: number } }).evidence;
    expect(evidence.contradictions).toBe(2);
    expect(rows["stable-a"].class).toBe("stable");
    const recency = Number(rows.flaky.recency_fail);
    expect(recency).toBeGreaterThan(0);

    // The same scheduled time again (a retried invocation): this repository is not recomputed, its rows stay.
    const again = await trigger(T);
    expect(recomputed(again, repo.repoId)).toBeUndefined();
    expect(await scoreRows(repo.repoId)).toEqual(first);

    // Twenty days on: the same runs in the window, the last failure's recency decayed by 2^(-20/14).
    const later = await recomputeFrom(repo.repoId, T + 20 * DAY);
    const after = byName(await scoreRows(repo.repoId));
    expect((after.flaky.ml_prediction_data as { asOf: string }).asOf).toBe(new Date(later.at).toISOString());
    expect(after.flaky.runs_considered).toBe(8);
    const decayed = Number(after.flaky.recency_fail);
    expect(decayed).toBeLessThan(recency);
    expect(decayed / recency).toBeCloseTo(2 ** (-(later.at - T) / (14 * DAY)), 4);
    // Evidence ages but is still in the window; first_flaky_at is kept.
    expect(after.flaky.first_flaky_at).toEqual(rows.flaky.first_flaky_at);
  }, 180_000);

  it("leaves a repository alone while its scores are younger than the interval", async () => {
    const repo = await repoWithSecret("flake-recompute-fresh");
    const startedAt = new Date(Math.floor(Date.now() / HOUR) * HOUR - DAY).toISOString();
    const tests = [{ path: "src/fresh.test.ts", name: "only", status: "pass", startedAt, durationMs: 1 }];
    expect((await upload(payload(repo.repoId, { run_id: "fresh-1" }, tests), repo)).status).toBe(200);
    // Later than the first test's times, so the repositories that one recomputed are not due again.
    const { at: T } = await recomputeFrom(repo.repoId, Math.floor(Date.now() / HOUR) * HOUR + 40 * DAY);
    const [row] = await scoreRows(repo.repoId);
    expect(Number(row.updated_ms)).toBe(T);
    // An hour short of the interval it is not due; at the interval it is.
    expect(recomputed(await trigger(T + RECOMPUTE_INTERVAL_MS - HOUR), repo.repoId)).toBeUndefined();
    const { at } = await recomputeFrom(repo.repoId, T + RECOMPUTE_INTERVAL_MS);
    const [next] = await scoreRows(repo.repoId);
    expect(Number(next.updated_ms)).toBe(at);
  }, 180_000);
});
