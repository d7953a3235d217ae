import { sql } from "drizzle-orm";
import journal from "../../drizzle/meta/_journal.json";
import type { Db } from "../db/client";
import { findSqlState } from "../lib/db-errors";
import { checkDatabase } from "./db-health";
import { dataRequestsHealth, withDataRequests } from "./privacy/health";

/**
 * What GET /api/health reports (README, Operations: what health means). Each part is "ok", "warn" (worth a
 * look, not an outage), "fail" (the answer is 503 and names it) or "unknown" (could not be checked; not a
 * failure by itself). Thresholds are in HEALTH_THRESHOLDS.
 */
export type PartStatus = "ok" | "warn" | "fail" | "unknown";

export const HEALTH_THRESHOLDS = {
  /** A `select 1` slower than this is "warn": the database answers, slowly. */
  slowDatabaseMs: 1_000,
  /** No completed upload for this long is "warn": a quiet system is not a broken one, so never "fail". */
  quietIngestionHours: 24,
  /**
   * Partitions must exist for the current and next month ("fail" otherwise: rows would land in the default
   * partition); the month after that is made by the daily upkeep two months ahead, "warn" when missing.
   */
  requiredMonthsAhead: 1,
  expectedMonthsAhead: 2,
  /** A job whose last success is older than this many of its periods is "fail". */
  missedPeriods: 3,
} as const;

/** The migrations this build of the Worker expects, in order (drizzle/meta/_journal.json, bundled). */
export const EXPECTED_MIGRATIONS: readonly string[] = journal.entries.map((entry) => entry.tag);

export interface HealthPart {
  status: PartStatus;
  [detail: string]: unknown;
}

export interface HealthReport {
  status: "healthy" | "unhealthy";
  /** The parts whose status is "fail". */
  failing: string[];
  checks: Record<"database" | "migrations" | "defaultPartition" | "partitions" | "ingestion" | "jobs", HealthPart>;
}

export interface HealthContext {
  db: Db | undefined;
  now: () => Date;
  /** Each job's period in minutes; a job missing here is reported without a threshold. */
  jobPeriods?: Record<string, number>;
  expectedMigrations?: readonly string[];
}

const unknown = (reason: string): HealthPart => ({ status: "unknown", reason });

function monthKey(date: Date, offset: number): string {
  const d = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + offset, 1));
  return d.toISOString().slice(0, 7);
}

function report(checks: HealthReport["checks"]): HealthReport {
  const failing = Object.entries(checks)
    .filter(([, part]) => part.status === "fail")
    .map(([name]) => name);
  return { status: failing.length ? "unhealthy" : "healthy", failing, checks };
}

export async function checkHealth(ctx: HealthContext): Promise<HealthReport> {
  const expected = ctx.expectedMigrations ?? EXPECTED_MIGRATIONS;
  if (!ctx.db) {
    const skipped = unknown("database not configured");
    return report({
      database: { status: "fail", database: "not_configured" },
      migrations: skipped,
      defaultPartition: skipped,
      partitions: skipped,
      ingestion: skipped,
      jobs: skipped,
    });
  }
  const db = ctx.db;
  const database = await checkDatabase(db);
  if (!database.healthy) {
    const skipped = unknown("database not reachable");
    return report({
      database: { status: "fail", database: database.reason, latencyMs: database.latencyMs },
      migrations: skipped,
      defaultPartition: skipped,
      partitions: skipped,
      ingestion: skipped,
      jobs: skipped,
    });
  }
  const now = ctx.now();
  const [tables, migrations, jobs, dataRequests] = await Promise.all([
    readTables(db, now).catch((error: unknown) => {
      const part = unknown(`query failed (${findSqlState(error) ?? "no SQLSTATE"})`);
      return { defaultPartition: part, partitions: part, ingestion: part };
    }),
    checkMigrations(db, expected),
    checkJobs(db, now, ctx.jobPeriods ?? {}),
    dataRequestsHealth(db, now),
  ]);
  return report({
    database: {
      status: database.latencyMs > HEALTH_THRESHOLDS.slowDatabaseMs ? "warn" : "ok",
      database: "connected",
      latencyMs: database.latencyMs,
    },
    migrations,
    ...tables,
    jobs: withDataRequests(jobs, dataRequests),
  });
}

/** One database request for the parts every role can read. */
async function readTables(db: Db, now: Date) {
  const [defaultRows, partitions, ingestion] = await db.batch([
    db.execute<{ rows: number }>(sql`select count(*)::int as rows from test_runs_default`),
    db.execute<{ bound: string }>(sql`
      select pg_get_expr(c.relpartbound, c.oid) as bound
      from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'public.test_runs'::regclass`),
    db.execute<{ last: string | null }>(sql`
      select to_char(max(completed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as last
      from ingestions where completed_at is not null`),
  ]);

  const rows = defaultRows.rows[0].rows;
  const defaultPartition: HealthPart = { status: rows > 0 ? "fail" : "ok", rows };

  const months = new Set(
    partitions.rows.flatMap(({ bound }) => {
      const from = /FROM \('(\d{4}-\d{2})/.exec(bound)?.[1];
      return from ? [from] : [];
    }),
  );
  const wanted = Array.from({ length: HEALTH_THRESHOLDS.expectedMonthsAhead + 1 }, (_, i) => monthKey(now, i));
  const missing = wanted.filter((month) => !months.has(month));
  const missingRequired = missing.filter((month) => wanted.indexOf(month) <= HEALTH_THRESHOLDS.requiredMonthsAhead);
  const partitionsPart: HealthPart = {
    status: missingRequired.length ? "fail" : missing.length ? "warn" : "ok",
    months: wanted.filter((month) => months.has(month)),
    missing,
  };

  const last = ingestion.rows[0].last;
  const ageSeconds = last ? Math.max(0, Math.round((now.getTime() - Date.parse(last)) / 1000)) : null;
  const ingestionPart: HealthPart = {
    status: ageSeconds === null ? "unknown" : ageSeconds > HEALTH_THRESHOLDS.quietIngestionHours * 3600 ? "warn" : "ok",
    lastCompletedAt: last,
    ageSeconds,
  };
  return { defaultPartition, partitions: partitionsPart, ingestion: ingestionPart };
}

/**
 * The ledger of applied migrations belongs to anchorpipe_migrator, and migration 0003 revokes it from the
 * Worker's roles. A SECURITY DEFINER function `anchorpipe_applied_migrations()` returning its tags, granted
 * to them, is read first when a migration provides it; else the table itself (the owner can read it).
 * Neither readable is "unknown", not a failure.
 */
async function readAppliedMigrations(db: Db): Promise<string[]> {
  try {
    const result = await db.execute<{ tag: string }>(sql`select tag from anchorpipe_applied_migrations() as tag`);
    return result.rows.map((r) => r.tag).sort();
  } catch (error) {
    if (findSqlState(error) !== "42883") throw error; // anything but "no such function"
  }
  const result = await db.execute<{ tag: string }>(sql`select tag from anchorpipe_migrations order by tag`);
  return result.rows.map((r) => r.tag);
}

async function checkMigrations(db: Db, expected: readonly string[]): Promise<HealthPart> {
  let applied: string[];
  try {
    applied = await readAppliedMigrations(db);
  } catch (error) {
    return unknown(`the migrations ledger cannot be read (${findSqlState(error) ?? "no SQLSTATE"})`);
  }
  const pending = expected.filter((tag) => !applied.includes(tag));
  // The database ahead of the Worker is normal while a deploy rolls out (migrations first, then the code).
  const unexpected = applied.filter((tag) => !expected.includes(tag));
  return {
    status: pending.length ? "fail" : unexpected.length ? "warn" : "ok",
    expected: expected.length,
    applied: applied.length,
    latest: applied.at(-1) ?? null,
    pending,
    unexpected,
  };
}

/** Each job's last successful run (job_runs, migration 0011) against its period. */
async function checkJobs(db: Db, now: Date, periods: Record<string, number>): Promise<HealthPart> {
  let rows: { job: string; lastSucceeded: string | null; lastOutcome: string | null }[];
  try {
    // job_runs only grows (db-health alone adds a row every 5 minutes): each job's name, its last success and
    // its last outcome are index probes (a skip scan over job_runs_job_started_idx, and the two indexes on
    // (job, time)), never a pass over the table.
    const result = await db.execute<{ job: string; last_succeeded: string | null; last_outcome: string | null }>(sql`
      with recursive names(job) as (
        (select job from job_runs order by job limit 1)
        union all
        select (select j.job from job_runs j where j.job > n.job order by j.job limit 1) from names n
        where n.job is not null
      )
      select n.job,
        (select to_char(r.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') from job_runs r
          where r.job = n.job and r.outcome = 'succeeded' order by r.finished_at desc nulls first limit 1)
          as last_succeeded,
        (select r.outcome from job_runs r where r.job = n.job order by r.started_at desc nulls first limit 1)
          as last_outcome
      from names n where n.job is not null order by n.job`);
    rows = result.rows.map((r) => ({ job: r.job, lastSucceeded: r.last_succeeded, lastOutcome: r.last_outcome }));
  } catch (error) {
    return unknown(`job_runs cannot be read (${findSqlState(error) ?? "no SQLSTATE"})`);
  }
  const byJob = new Map(rows.map((row) => [row.job, row]));
  const names = [...new Set([...Object.keys(periods), ...byJob.keys()])].sort();
  const jobs = names.map((job) => {
    const row = byJob.get(job);
    const periodMinutes = periods[job] ?? null;
    const ageSeconds = row?.lastSucceeded
      ? Math.max(0, Math.round((now.getTime() - Date.parse(row.lastSucceeded)) / 1000))
      : null;
    let status: PartStatus;
    if (!row) {
      status = "unknown"; // never ran yet: a fresh deployment, or cron not firing (see the logs)
    } else if (ageSeconds !== null) {
      const stale = periodMinutes !== null && ageSeconds > periodMinutes * 60 * HEALTH_THRESHOLDS.missedPeriods;
      status = stale ? "fail" : "ok";
    } else if (row.lastOutcome === "failed") {
      status = "fail"; // ran, never succeeded
    } else {
      status = "warn"; // only skipped (something it needs is not configured), or its first run still running
    }
    return {
      job,
      status,
      lastSucceededAt: row?.lastSucceeded ?? null,
      ageSeconds,
      lastOutcome: row?.lastOutcome ?? null,
      periodMinutes,
    };
  });
  const failing = jobs.filter((j) => j.status === "fail").map((j) => j.job);
  return { status: failing.length ? "fail" : "ok", failing, jobs };
}

/**
 * A cron expression's period in minutes, for the five-field expressions the schedule uses: `*\/N * * * *`
 * every N minutes, `M * * * *` hourly, `M H * * *` daily; anything else is taken as daily.
 */
export function cronPeriodMinutes(cron: string): number {
  const [minute, hour] = cron.trim().split(/\s+/);
  const every = /^\*\/(\d+)$/.exec(minute ?? "");
  if (every && hour === "*") return Number(every[1]);
  if (minute === "*" && hour === "*") return 1;
  if (hour === "*") return 60;
  return 24 * 60;
}

/** Job name → its shortest period, from a cron → jobs schedule. */
export function jobPeriods(schedule: Record<string, readonly { name: string }[]>): Record<string, number> {
  const periods: Record<string, number> = {};
  for (const [cron, jobs] of Object.entries(schedule)) {
    for (const job of jobs)
      periods[job.name] = Math.min(periods[job.name] ?? Number.POSITIVE_INFINITY, cronPeriodMinutes(cron));
  }
  return periods;
}
