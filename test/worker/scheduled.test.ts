/// <reference types="vite/client" />
import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { parse } from "smol-toml";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { dbHealthCheck } from "../../src/jobs/db-health-check";
import { expiredSessions } from "../../src/jobs/expired-sessions";
import { SCHEDULE } from "../../src/jobs/index";
import { LEASE_EXPIRED } from "../../src/jobs/ledger";
import { partitionUpkeep } from "../../src/jobs/partition-upkeep";
import { JobFailedError } from "../../src/jobs/types";
import { createToken } from "../../src/services/tokens";
import { createUser } from "../../src/services/users";
import wranglerToml from "../../wrangler.toml?raw";
import { serviceContext, testDb } from "./ingestion-support";

/**
 * Every test goes through the Worker's own scheduled() entry and reads job_runs. The database is shared with
 * the other test files, so the scheduled times are in 2001 (each test its own minute: the ledger refuses a
 * job's second success at the same time), where the time-based jobs find no one else's rows. The daily jobs
 * rescore and purge the whole database as of their scheduled time; where they would run here they are
 * stubbed (their own files test what they do), and only the dispatch and the ledger are tested.
 */
const FIVE_MINUTES = "*/5 * * * *";
const HOURLY = "0 * * * *";
const DAILY = "17 3 * * *";
const at = (month: number, day: number, hour = 0, minute = 0) => Date.UTC(2001, month - 1, day, hour, minute);

type Event = Record<string, unknown> & { event: string };
type Run = {
  id: string;
  job: string;
  scheduled_ms: number;
  outcome: string;
  counts: Record<string, number> | null;
  error: string | null;
  finished: boolean;
  leased: boolean;
};

/** One invocation of scheduled(): its log lines and whether it threw. */
async function trigger(
  cron: string,
  scheduledTime: number,
  bindings: Cloudflare.Env = env,
): Promise<{ events: Event[]; error?: Error }> {
  const lines: string[] = [];
  const capture = (line: string) => {
    lines.push(line);
  };
  vi.spyOn(console, "log").mockImplementation(capture);
  vi.spyOn(console, "warn").mockImplementation(capture);
  vi.spyOn(console, "error").mockImplementation(capture);
  let error: Error | undefined;
  try {
    await worker.scheduled(createScheduledController({ cron, scheduledTime }), bindings);
  } catch (thrown) {
    error = thrown as Error;
  }
  return { events: lines.map((line) => JSON.parse(line) as Event), error };
}

const jobRuns = (events: Event[]) => events.filter((e) => e.event === "job.run");

async function ledger(scheduledTime: number, job?: string): Promise<Run[]> {
  const result = await testDb().execute<Run>(sql`
    select id, job, (extract(epoch from scheduled_at) * 1000)::float8 as scheduled_ms, outcome, counts, error,
      finished_at is not null as finished, lease_until is not null as leased
    from job_runs
    where scheduled_at = ${new Date(scheduledTime).toISOString()}::timestamptz
      and (${job ?? null}::text is null or job = ${job ?? null}::text)
    order by started_at, created_at, id`);
  return result.rows;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the schedule", () => {
  it("wrangler.toml's crons are exactly SCHEDULE's keys", () => {
    const config = parse(wranglerToml) as { triggers: { crons: string[] } };
    expect([...config.triggers.crons].sort()).toEqual(Object.keys(SCHEDULE).sort());
  });

  it("runs the jobs the issue names on the crons it names", () => {
    const names = Object.fromEntries(Object.entries(SCHEDULE).map(([cron, jobs]) => [cron, jobs.map((j) => j.name)]));
    expect(names[FIVE_MINUTES]).toEqual(["db-health"]);
    expect(names[HOURLY]).toEqual([
      "partition-upkeep",
      "incomplete-upload-cleanup",
      "expired-sessions",
      "github-upkeep",
    ]);
    // Retention before the rescoring (other daily jobs may join them).
    expect(names[DAILY]).toEqual(expect.arrayContaining(["retention", "flake-recompute"]));
    expect(names[DAILY].indexOf("retention")).toBeLessThan(names[DAILY].indexOf("flake-recompute"));
    const all = Object.values(names).flat();
    expect(new Set(all).size, "a job on two crons would share its lease").toBe(all.length);
  });

  it("fails loudly for a cron expression it does not know", async () => {
    const { error, events } = await trigger("0 0 31 2 *", at(1, 1));
    expect(error?.message).toMatch(/no jobs are scheduled/);
    expect(events).toContainEqual(expect.objectContaining({ event: "scheduled.unknown_cron" }));
  });
});

describe("every cron dispatches its jobs and records each run in job_runs", () => {
  it("every five minutes: db-health", async () => {
    const T = at(1, 2, 0, 5);
    const { events, error } = await trigger(FIVE_MINUTES, T);
    expect(error).toBeUndefined();
    const [run] = await ledger(T);
    expect(run).toMatchObject({ job: "db-health", scheduled_ms: T, outcome: "succeeded", error: null });
    expect(run.finished && run.leased).toBe(true);
    expect(run.counts?.latencyMs).toBeGreaterThanOrEqual(0);
    // One structured line per run: job, outcome, duration and counts.
    const [line] = jobRuns(events);
    expect(line).toMatchObject({ level: "info", cron: FIVE_MINUTES, job: "db-health", outcome: "succeeded" });
    expect(line.ms).toEqual(expect.any(Number));
    expect(line.counts).toEqual(run.counts);
    expect(line.runId).toBe(run.id);
  });

  it("hourly: partition upkeep (months from the scheduled time), incomplete uploads, expired sessions, GitHub upkeep", async () => {
    const T = at(2, 1, 1, 0);
    const { events, error } = await trigger(HOURLY, T);
    expect(error).toBeUndefined();
    const runs = await ledger(T);
    expect(runs.map((r) => [r.job, r.outcome])).toEqual([
      ["partition-upkeep", "succeeded"],
      ["incomplete-upload-cleanup", "succeeded"],
      ["expired-sessions", "succeeded"],
      ["github-upkeep", "succeeded"],
    ]);
    expect(runs[0].counts).toEqual({ created: 3, defaultPartitionRows: 0 });
    expect(runs[1].counts).toEqual({ removed: 0 });
    expect(runs[2].counts).toEqual({ sessions: expect.any(Number), verificationTokens: expect.any(Number) });
    expect(events).toContainEqual(
      expect.objectContaining({
        event: "job.partition_upkeep.created",
        partitions: ["test_runs_p2001_02", "test_runs_p2001_03", "test_runs_p2001_04"],
      }),
    );
    expect(jobRuns(events).map((e) => e.job)).toEqual(runs.map((r) => r.job));

    // Idempotent job, refused second run: the same trigger again records a skipped run and changes nothing.
    const again = await trigger(HOURLY, T);
    expect(again.error).toBeUndefined();
    const after = await ledger(T);
    expect(after.filter((r) => r.outcome === "succeeded")).toEqual(runs);
    expect(after.filter((r) => r.outcome === "skipped").map((r) => r.job)).toEqual(runs.map((r) => r.job));
  });

  it("daily: every daily job (stubbed: they rescore and purge the whole shared database)", async () => {
    const T = at(3, 1, 3, 17);
    const stubs = SCHEDULE[DAILY].map((job) =>
      vi.spyOn(job, "run").mockResolvedValue({ outcome: "succeeded", counts: { stubbed: 1 } }),
    );
    const { error } = await trigger(DAILY, T);
    expect(error).toBeUndefined();
    for (const stub of stubs) {
      expect(stub).toHaveBeenCalledTimes(1);
      // The scheduled time, not the clock, is what the job gets.
      expect(stub.mock.calls[0][0].scheduledTime.getTime()).toBe(T);
    }
    const runs = await ledger(T);
    expect(runs.map((r) => [r.job, r.outcome, r.counts])).toEqual(
      SCHEDULE[DAILY].map((job) => [job.name, "succeeded", { stubbed: 1 }]),
    );
  });
});

describe("the lease", () => {
  it("keeps a second concurrent run of a job from running: it is recorded as skipped", async () => {
    const T1 = at(4, 1, 0, 5);
    const T2 = at(4, 1, 0, 10);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered!: () => void;
    const running = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const real = dbHealthCheck.run.bind(dbHealthCheck);
    const run = vi.spyOn(dbHealthCheck, "run").mockImplementation(async (ctx) => {
      entered();
      await gate;
      return real(ctx);
    });

    const first = trigger(FIVE_MINUTES, T1);
    await running;
    // The first run holds the lease (its row is `running`) while the second trigger fires.
    expect((await ledger(T1)).map((r) => r.outcome)).toEqual(["running"]);
    const second = await trigger(FIVE_MINUTES, T2);
    release();
    const done = await first;

    expect(run).toHaveBeenCalledTimes(1);
    expect(done.error).toBeUndefined();
    expect(second.error, "a refused lease is not a failure").toBeUndefined();
    const [winner] = await ledger(T1);
    expect(winner.outcome).toBe("succeeded");
    const [refused] = await ledger(T2);
    expect(refused).toMatchObject({ job: "db-health", outcome: "skipped", counts: null, leased: false });
    expect(refused.error).toContain(`another run holds the lease (run ${winner.id}`);
    expect(jobRuns(second.events)).toEqual([expect.objectContaining({ job: "db-health", outcome: "skipped" })]);
  });

  it("two invocations for the same scheduled time at once: the job runs once", async () => {
    const T = at(4, 2, 0, 5);
    const run = vi.spyOn(dbHealthCheck, "run");
    const both = await Promise.all([trigger(FIVE_MINUTES, T), trigger(FIVE_MINUTES, T)]);
    expect(both.map((b) => b.error)).toEqual([undefined, undefined]);
    expect(run).toHaveBeenCalledTimes(1);
    expect((await ledger(T)).map((r) => r.outcome).sort()).toEqual(["skipped", "succeeded"]);
  });

  it("the same scheduled time twice runs once; a failed time may run again", async () => {
    const T = at(4, 3, 0, 5);
    const run = vi.spyOn(dbHealthCheck, "run");
    await trigger(FIVE_MINUTES, T);
    const again = await trigger(FIVE_MINUTES, T);
    expect(run).toHaveBeenCalledTimes(1);
    const runs = await ledger(T);
    expect(runs.map((r) => r.outcome)).toEqual(["succeeded", "skipped"]);
    expect(runs[1].error).toBe(`this scheduled time already succeeded (run ${runs[0].id})`);
    expect(jobRuns(again.events)).toEqual([expect.objectContaining({ outcome: "skipped" })]);

    // A failed run does not use up its scheduled time: the next delivery (or a re-run by hand) runs it.
    const U = at(4, 3, 0, 10);
    run.mockRejectedValueOnce(new Error("database was restarting"));
    expect((await trigger(FIVE_MINUTES, U)).error?.message).toMatch(/scheduled jobs failed: db-health/);
    expect((await trigger(FIVE_MINUTES, U)).error).toBeUndefined();
    expect((await ledger(U)).map((r) => r.outcome)).toEqual(["failed", "succeeded"]);
  });

  it("a run whose Worker died is closed as failed when its lease runs out, and the next run goes ahead", async () => {
    const db = testDb();
    const crashed = at(4, 4, 0, 0);
    const T = at(4, 4, 0, 5);
    // A live lease (until an hour from now) refuses the next run…
    await db.execute(sql`
      insert into job_runs (job, scheduled_at, outcome, lease_until)
      values ('db-health', ${new Date(crashed).toISOString()}::timestamptz, 'running', now() + interval '1 hour')`);
    try {
      expect((await trigger(FIVE_MINUTES, T)).error).toBeUndefined();
      expect((await ledger(T)).map((r) => r.outcome)).toEqual(["skipped"]);
    } finally {
      // …and one that ran out (the run is long dead) does not.
      await db.execute(sql`
        update job_runs set lease_until = now() - interval '1 second'
        where job = 'db-health' and outcome = 'running' and scheduled_at = ${new Date(crashed).toISOString()}::timestamptz`);
    }
    const U = at(4, 4, 0, 10);
    expect((await trigger(FIVE_MINUTES, U)).error).toBeUndefined();
    const [dead] = await ledger(crashed);
    expect(dead).toMatchObject({ outcome: "failed", error: LEASE_EXPIRED, finished: true });
    expect((await ledger(U)).map((r) => r.outcome)).toEqual(["succeeded"]);
  });
});

describe("a failing job", () => {
  it("is recorded with its error, without the statement's parameters, and the others complete", async () => {
    const T = at(5, 1, 1, 0);
    const secretValue = `not-a-number-${crypto.randomUUID()}`;
    vi.spyOn(partitionUpkeep, "run").mockImplementation(async ({ db }) => {
      // A real database error whose message quotes the parameter.
      await db?.execute(sql`select ${secretValue}::int as n`);
      return { outcome: "succeeded" };
    });
    const { events, error } = await trigger(HOURLY, T);
    expect(error?.message).toBe("scheduled jobs failed: partition-upkeep");

    const runs = await ledger(T);
    expect(runs.map((r) => [r.job, r.outcome])).toEqual([
      ["partition-upkeep", "failed"],
      ["incomplete-upload-cleanup", "succeeded"],
      ["expired-sessions", "succeeded"],
      ["github-upkeep", "succeeded"],
    ]);
    expect(runs[0].finished).toBe(true);
    expect(runs[0].error).toMatch(/sqlState 22P02/);
    expect(runs[0].error).toMatch(/select \$1::int as n/);
    const failedLine = jobRuns(events).find((e) => e.job === "partition-upkeep");
    expect(failedLine).toMatchObject({ level: "error", outcome: "failed", error: { sqlState: "22P02" } });
    // Neither the ledger nor the logs hold the parameter.
    expect(JSON.stringify(runs)).not.toContain(secretValue);
    expect(JSON.stringify(events)).not.toContain(secretValue);
  });

  it("keeps the counts of what it did before it failed", async () => {
    const T = at(5, 2, 1, 0);
    vi.spyOn(expiredSessions, "run").mockRejectedValue(
      new JobFailedError("expired sessions failed half-way", { sessions: 3, verificationTokens: 0 }),
    );
    const { error } = await trigger(HOURLY, T);
    expect(error?.message).toBe("scheduled jobs failed: expired-sessions");
    const [run] = await ledger(T, "expired-sessions");
    expect(run).toMatchObject({
      outcome: "failed",
      counts: { sessions: 3, verificationTokens: 0 },
      error: "JobFailedError: expired sessions failed half-way",
    });
  });

  it("a job whose service is missing reports skipped, never a success (no database: no ledger either)", async () => {
    const T = at(5, 3, 1, 0);
    const { events, error } = await trigger(HOURLY, T, { ...env, DATABASE_URL: undefined });
    expect(error).toBeUndefined();
    expect(jobRuns(events).map((e) => [e.job, e.outcome, e.note])).toEqual(
      SCHEDULE[HOURLY].map((job) => [job.name, "skipped", "DATABASE_URL is not configured"]),
    );
    expect(await ledger(T)).toEqual([]);
  });
});

describe("expired-sessions", () => {
  it("removes exactly the sessions and verification tokens expired as of the scheduled time", async () => {
    const T = at(6, 1, 2, 0);
    const db = testDb();
    const ctx = serviceContext(() => new Date(T - 30 * 86_400_000));
    const user = await createUser(serviceContext(), { login: `expiry-${crypto.randomUUID().slice(0, 8)}` });
    const expiring = async (label: string, expires: number) => {
      const { sessionId } = await createToken(ctx, { userId: user.id, days: 30 });
      await db.execute(sql`update sessions set expires = ${new Date(expires).toISOString()}::timestamptz
        where id = ${sessionId}`);
      await db.execute(sql`insert into verification_tokens (identifier, token, expires)
        values (${user.id}, ${`${label}-${crypto.randomUUID()}`}, ${new Date(expires).toISOString()}::timestamptz)`);
      return sessionId;
    };
    await expiring("before", T - 1);
    await expiring("exactly", T);
    const after = await expiring("after", T + 1);
    const current = (await createToken(serviceContext(), { userId: user.id })).sessionId;

    expect((await trigger(HOURLY, T)).error).toBeUndefined();

    const left = await db.execute<{ id: string }>(sql`select id from sessions where user_id = ${user.id}`);
    expect(left.rows.map((r) => r.id).sort()).toEqual([after, current].sort());
    const tokens = await db.execute<{ token: string }>(
      sql`select token from verification_tokens where identifier = ${user.id}`,
    );
    expect(tokens.rows.map((r) => r.token.split("-")[0])).toEqual(["after"]);
    const [run] = await ledger(T, "expired-sessions");
    expect(run.outcome).toBe("succeeded");
    expect(run.counts?.sessions).toBeGreaterThanOrEqual(2);
    expect(run.counts?.verificationTokens).toBeGreaterThanOrEqual(2);
  });
});
