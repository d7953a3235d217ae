import type { Db } from "../db/client";
import type { Bindings, Config } from "../env";

export interface JobContext {
  /** The Worker's validated configuration. */
  config: Config;
  /**
   * The Worker's bindings as wrangler hands them (R2 buckets and the like). A job checks the ones it needs
   * and returns `skipped` when one is missing.
   */
  env: Bindings;
  /** Undefined when DATABASE_URL is not configured: a job that needs the database returns `skipped`. */
  db: Db | undefined;
  /**
   * The trigger's scheduled time (or `--at` when run by hand): the cut-off for everything time-based in the
   * run, never the wall clock, so a late or repeated run for the same time does the same work.
   */
  scheduledTime: Date;
}

/**
 * How a run ended when it did not throw. A job throws to fail (the runner records the error); it returns
 * `skipped` when it could not do its work because a service or binding is missing — never a success it did
 * not earn.
 */
export interface JobResult {
  outcome: "succeeded" | "skipped";
  /** What the run did, by name (rows removed, partitions created, …): recorded in job_runs.counts. */
  counts?: Record<string, number>;
  /** Why it was skipped, or anything an operator should read; no parameters or personal data. */
  note?: string;
}

export interface Job {
  /** Unique, stable, kebab-case: the ledger's `job` column and the argument of `npm run job`. */
  name: string;
  run(ctx: JobContext): Promise<JobResult>;
  /**
   * How long a run may hold the job's lease before another run may take it over (a run that crashed without
   * recording its end). Longer than the job can take; default `DEFAULT_LEASE_MS`.
   */
  leaseMs?: number;
}

/** A Worker's scheduled invocation runs at most 15 minutes; a lease a little longer outlives any live run. */
export const DEFAULT_LEASE_MS = 20 * 60 * 1000;

export function skipped(note: string): JobResult {
  return { outcome: "skipped", note };
}

/**
 * A failure that still reports what the run did before it failed (some repositories rescored, others not):
 * the runner records `counts` next to the error.
 */
export class JobFailedError extends Error {
  constructor(
    message: string,
    readonly counts: Record<string, number>,
  ) {
    super(message);
    this.name = "JobFailedError";
  }
}
