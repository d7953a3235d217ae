import { createDb, type Db } from "../db/client";
import { type Bindings, loadConfig } from "../env";
import { describeFailure, failureText } from "../lib/db-errors";
import { log } from "../lib/logger";
import { dbHealthCheck } from "./db-health-check";
import { expiredSessions } from "./expired-sessions";
import { flakeRecompute } from "./flake-recompute";
import { githubUpkeep } from "./github-upkeep";
import { incompleteUploadCleanup } from "./incomplete-upload-cleanup";
import { finishRun, takeLease } from "./ledger";
import { partitionUpkeep } from "./partition-upkeep";
import { privacyRequests } from "./privacy-requests";
import { retention } from "./retention";
import { DEFAULT_LEASE_MS, type Job, type JobContext, JobFailedError } from "./types";

/**
 * Cron expression → the jobs it runs, in order. The expressions must match `[triggers] crons` in
 * wrangler.toml; a test checks that they do. The daily jobs share one invocation: retention first (it is
 * resumable and bounded by its own budgets), then the full rescoring (bounded by RECOMPUTE_BUDGET_MS).
 */
export const SCHEDULE: Record<string, Job[]> = {
  "*/5 * * * *": [dbHealthCheck],
  "0 * * * *": [partitionUpkeep, incompleteUploadCleanup, expiredSessions, githubUpkeep],
  "17 3 * * *": [retention, flakeRecompute, privacyRequests],
};

/** Every job once, for `npm run job` and the health endpoint. */
export const JOBS: Job[] = [...new Set(Object.values(SCHEDULE).flat())];

export function findJob(name: string): Job | undefined {
  return JOBS.find((job) => job.name === name);
}

export class UnknownScheduleError extends Error {}

/** How one run ended, as logged and as `runScheduled` reports it. */
export interface JobRunReport {
  job: string;
  /** The ledger row, when there is a database to keep one. */
  runId?: string;
  outcome: "succeeded" | "skipped" | "failed";
  ms: number;
  counts?: Record<string, number>;
  note?: string;
  /** A failure described without the statement's parameters (describeFailure). */
  error?: Record<string, string>;
}

/**
 * One run of one job: take the lease (its `running` row in job_runs), run, record the end. Never throws: a
 * failure is the report's outcome. Without a database there is no ledger and no lease; the job runs alone
 * (every job that needs the database then reports skipped).
 */
export async function runJob(job: Job, ctx: JobContext, fields: Record<string, unknown> = {}): Promise<JobRunReport> {
  const started = Date.now();
  const report = (rest: Omit<JobRunReport, "job" | "ms">): JobRunReport => {
    const done: JobRunReport = { job: job.name, ms: Date.now() - started, ...rest };
    const line = { ...fields, scheduledAt: ctx.scheduledTime.toISOString(), ...done };
    if (done.outcome === "failed") log.error("job.run", line);
    else log.info("job.run", line);
    return done;
  };

  const db: Db | undefined = ctx.db;
  let runId: string | undefined;
  if (db) {
    try {
      const lease = await takeLease(db, job.name, ctx.scheduledTime, job.leaseMs ?? DEFAULT_LEASE_MS);
      if (!lease.taken) return report({ outcome: "skipped", note: lease.note });
      runId = lease.id;
    } catch (error) {
      // No lease, no run: the database the ledger lives in is refusing or unreachable.
      return report({ outcome: "failed", note: "the lease could not be taken", error: describeFailure(error) });
    }
  }

  let end: Omit<JobRunReport, "job" | "ms">;
  try {
    const result = await job.run(ctx);
    end = { runId, outcome: result.outcome, counts: result.counts, note: result.note };
  } catch (error) {
    const counts = error instanceof JobFailedError ? error.counts : undefined;
    end = { runId, outcome: "failed", counts, error: describeFailure(error) };
  }
  if (db && runId) {
    try {
      const recorded = await finishRun(db, runId, {
        outcome: end.outcome,
        counts: end.counts,
        // job_runs.error says why a run did not succeed: a failure's description, a skipped run's note.
        error: end.error ? failureText(end.error) : end.outcome === "skipped" ? end.note : undefined,
      });
      if (!recorded) end.note = "the lease had expired and another run closed this one as failed";
    } catch (error) {
      log.error("job.ledger_failed", { job: job.name, runId, ...describeFailure(error) });
    }
  }
  return report(end);
}

/**
 * The Cron Trigger's entry: every job of the cron, in order, each under its lease and recorded; a failing job
 * does not stop the others. The invocation fails afterwards if any did, so Cloudflare shows it as failed.
 */
export async function runScheduled(cron: string, scheduledTime: Date, env: Bindings): Promise<JobRunReport[]> {
  const jobs = SCHEDULE[cron];
  if (!jobs) {
    log.error("scheduled.unknown_cron", { cron });
    throw new UnknownScheduleError(`no jobs are scheduled for cron "${cron}"`);
  }
  const config = loadConfig(env);
  const db = config.DATABASE_URL ? createDb({ ...config, DATABASE_URL: config.DATABASE_URL }) : undefined;
  const reports: JobRunReport[] = [];
  for (const job of jobs) reports.push(await runJob(job, { config, env, db, scheduledTime }, { cron }));
  const failed = reports.filter((r) => r.outcome === "failed").map((r) => r.job);
  if (failed.length) throw new Error(`scheduled jobs failed: ${failed.join(", ")}`);
  return reports;
}
