import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/neon-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as schema from "../../src/db/schema/index.ts";
import { checkHealth, cronPeriodMinutes, EXPECTED_MIGRATIONS, jobPeriods } from "../../src/services/health.ts";
import { ensureTestRunPartitions } from "../../src/services/partitions.ts";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase, workerDb } from "./db-support.ts";
import { sqlClient } from "./support.ts";

/**
 * The health aggregate's judgements on a database of this file's own (the suite's shared one cannot have
 * rows put into its default partition or its job ledger emptied without upsetting other files): through the
 * Worker's service and its kind of client, on the run's backend. The Worker-level answers (200/503, the
 * database down) are in test/worker/health-aggregate.test.ts.
 */
let database: TestDatabase;
let worker: ReturnType<typeof workerDb>;
let owner: ReturnType<typeof workerDb>;
let repoId: string;

const query = async (text: string, values: unknown[] = []) => (await database.backend.pool.query(text, values)).rows;
const MINUTE = 60_000;

beforeAll(async () => {
  database = await migratedDatabase();
  worker = workerDb(database);
  owner = drizzle({ client: sqlClient("owner"), schema, casing: "snake_case" });
  const [repo] = await query("insert into repos (owner, name) values ('acme', 'health') returning id");
  repoId = repo.id;
});

afterAll(async () => {
  await database?.drop();
});

describe("the health aggregate on its own database", () => {
  it("a fresh database: ok, with no ingestion and no job run yet as unknown", async () => {
    const now = new Date();
    const report = await checkHealth({ db: owner, now: () => now, jobPeriods: { "db-health": 5 } });
    expect(report.failing).toEqual([]);
    expect(report.status).toBe("healthy");
    expect(report.checks.database.status).toBe("ok");
    expect(report.checks.migrations).toMatchObject({
      status: "ok",
      expected: EXPECTED_MIGRATIONS.length,
      applied: EXPECTED_MIGRATIONS.length,
      pending: [],
      latest: EXPECTED_MIGRATIONS.at(-1),
    });
    expect(report.checks.defaultPartition).toEqual({ status: "ok", rows: 0 });
    expect(report.checks.ingestion).toMatchObject({ status: "unknown", lastCompletedAt: null });
    expect(report.checks.jobs).toMatchObject({ status: "ok", jobs: [{ job: "db-health", status: "unknown" }] });
  });

  it("migrations: pending ones fail, the database ahead of the Worker warns, an unreadable ledger is unknown", async () => {
    const now = () => new Date();
    const pending = await checkHealth({ db: owner, now, expectedMigrations: [...EXPECTED_MIGRATIONS, "9999_next"] });
    expect(pending.checks.migrations).toMatchObject({ status: "fail", pending: ["9999_next"] });
    expect(pending.failing).toContain("migrations");
    const ahead = await checkHealth({ db: owner, now, expectedMigrations: EXPECTED_MIGRATIONS.slice(0, -1) });
    expect(ahead.checks.migrations).toMatchObject({ status: "warn", unexpected: [EXPECTED_MIGRATIONS.at(-1)] });
  });

  it("migrations as the Worker's role: through anchorpipe_applied_migrations() (migration 0015); unknown without it", async () => {
    // Migration 0003 revokes the ledger itself from the Worker's roles; 0015's function reads its tags for them.
    const asWorker = await checkHealth({ db: worker, now: () => new Date() });
    expect(asWorker.checks.migrations).toMatchObject({
      status: "ok",
      applied: EXPECTED_MIGRATIONS.length,
      pending: [],
    });
    await owner.execute(sql`REVOKE EXECUTE ON FUNCTION anchorpipe_applied_migrations() FROM anchorpipe_app`);
    try {
      const unreadable = await checkHealth({ db: worker, now: () => new Date() });
      expect(unreadable.checks.migrations).toMatchObject({ status: "unknown" });
      expect(unreadable.checks.migrations.reason).toMatch(/42501/);
      expect(unreadable.failing).not.toContain("migrations");
    } finally {
      await owner.execute(sql`GRANT EXECUTE ON FUNCTION anchorpipe_applied_migrations() TO anchorpipe_app`);
    }
  });

  it("rows in the default partition fail (and the answer names the part)", async () => {
    const [testCase] = await query("insert into test_cases (repo_id, path, name) values ($1, 'a', 'b') returning id", [
      repoId,
    ]);
    const [ingestion] = await query(
      `insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
         tests_failed, tests_skipped, payload_sha256, response)
       values ($1, 'default-part', repeat('a', 40), 'r1', 'junit', 'v2', 1, 0, 0, 'x', '{}') returning id`,
      [repoId],
    );
    // 2099 has no partition: the row lands in test_runs_default.
    const [run] = await query(
      `insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, created_at)
       values ($1, $2, $3, repeat('a', 40), 'r1', 'pass', '2099-01-01', '2099-01-01')
       returning id, tableoid::regclass::text as partition`,
      [repoId, testCase.id, ingestion.id],
    );
    expect(run.partition).toBe("test_runs_default");
    try {
      const report = await checkHealth({ db: worker, now: () => new Date() });
      expect(report.status).toBe("unhealthy");
      expect(report.failing).toEqual(["defaultPartition"]);
      expect(report.checks.defaultPartition).toEqual({ status: "fail", rows: 1 });
    } finally {
      await query("delete from test_runs where id = $1 and created_at = '2099-01-01'", [run.id]);
    }
  });

  it("partitions: this or next month missing fails, the month after warns, all three ok", async () => {
    const inTheFuture = new Date(Date.UTC(2041, 2, 15));
    const missing = await checkHealth({ db: worker, now: () => inTheFuture });
    expect(missing.checks.partitions).toMatchObject({
      status: "fail",
      months: [],
      missing: ["2041-03", "2041-04", "2041-05"],
    });
    await ensureTestRunPartitions(worker, 1, inTheFuture);
    expect((await checkHealth({ db: worker, now: () => inTheFuture })).checks.partitions).toMatchObject({
      status: "warn",
      missing: ["2041-05"],
    });
    await ensureTestRunPartitions(worker, 2, inTheFuture);
    expect((await checkHealth({ db: worker, now: () => inTheFuture })).checks.partitions).toEqual({
      status: "ok",
      months: ["2041-03", "2041-04", "2041-05"],
      missing: [],
    });
  });

  it("the last completed ingestion: its age, warn after a quiet day (never fail)", async () => {
    await query(
      `insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
         tests_failed, tests_skipped, payload_sha256, response, completed_at)
       values ($1, 'done', repeat('b', 40), 'r2', 'junit', 'v2', 1, 0, 0, 'x', '{}', '2030-06-01T12:00:00Z')`,
      [repoId],
    );
    const soon = await checkHealth({ db: worker, now: () => new Date("2030-06-01T12:10:00Z") });
    expect(soon.checks.ingestion).toEqual({ status: "ok", lastCompletedAt: "2030-06-01T12:00:00Z", ageSeconds: 600 });
    const quiet = await checkHealth({ db: worker, now: () => new Date("2030-06-03T12:00:00Z") });
    expect(quiet.checks.ingestion).toMatchObject({ status: "warn", ageSeconds: 2 * 86_400 });
    expect(quiet.failing).not.toContain("ingestion");
  });

  it("jobs: each one's last success against three of its periods; never succeeded after a failure fails", async () => {
    const now = new Date("2030-07-01T12:00:00Z");
    const at = (minutesAgo: number) => new Date(now.getTime() - minutesAgo * MINUTE).toISOString();
    const run = (job: string, outcome: string, minutesAgo: number) =>
      query(
        `insert into job_runs (job, scheduled_at, started_at, finished_at, outcome)
         values ($1, $2::timestamptz, $2::timestamptz, $2::timestamptz + interval '1 second', $3)`,
        [job, at(minutesAgo), outcome],
      );
    await run("db-health", "succeeded", 7); // every 5 minutes: 7 minutes is fine
    await run("partition-upkeep", "succeeded", 200); // hourly: more than 3 hours ago is stale
    await run("partition-upkeep", "failed", 5);
    await run("flake-recompute", "failed", 30); // never succeeded
    await run("retention", "skipped", 30); // only skipped: something it needs is not configured
    const periods = {
      "db-health": 5,
      "partition-upkeep": 60,
      "flake-recompute": 1440,
      retention: 1440,
      "never-ran": 60,
    };
    const report = await checkHealth({ db: worker, now: () => now, jobPeriods: periods });
    const jobs = report.checks.jobs as unknown as {
      status: string;
      failing: string[];
      jobs: Record<string, unknown>[];
    };
    expect(jobs.status).toBe("fail");
    expect(jobs.failing).toEqual(["flake-recompute", "partition-upkeep"]);
    expect(report.failing).toContain("jobs");
    const byName = Object.fromEntries(jobs.jobs.map((j) => [j.job, j]));
    expect(byName["db-health"]).toMatchObject({ status: "ok", ageSeconds: 7 * 60 - 1, periodMinutes: 5 });
    expect(byName["partition-upkeep"]).toMatchObject({ status: "fail", lastOutcome: "failed" });
    expect(byName["flake-recompute"]).toMatchObject({ status: "fail", lastSucceededAt: null });
    expect(byName.retention).toMatchObject({ status: "warn", lastOutcome: "skipped" });
    expect(byName["never-ran"]).toMatchObject({ status: "unknown", lastOutcome: null });
  });

  it("without a database: the database part fails and the rest are unknown", async () => {
    const report = await checkHealth({ db: undefined, now: () => new Date() });
    expect(report.failing).toEqual(["database"]);
    expect(Object.values(report.checks).filter((p) => p.status === "unknown")).toHaveLength(5);
  });
});

describe("job periods from the schedule", () => {
  it("reads the schedule's kinds of cron expression", () => {
    expect(cronPeriodMinutes("*/5 * * * *")).toBe(5);
    expect(cronPeriodMinutes("0 * * * *")).toBe(60);
    expect(cronPeriodMinutes("17 3 * * *")).toBe(1440);
    expect(jobPeriods({ "*/5 * * * *": [{ name: "a" }], "0 * * * *": [{ name: "a" }, { name: "b" }] })).toEqual({
      a: 5,
      b: 60,
    });
  });
});
