import { createDb } from "../db/client";
import { type Bindings, loadConfig } from "../env";
import { describeFailure } from "../lib/db-errors";
import { log } from "../lib/logger";
import { dbHealthCheck } from "./db-health-check";
import { flakeRecompute } from "./flake-recompute";
import { incompleteUploadCleanup } from "./incomplete-upload-cleanup";
import { partitionUpkeep } from "./partition-upkeep";
import type { Job } from "./types";

/**
 * Cron expression → the jobs it runs. The expressions must match
 * `[triggers] crons` in wrangler.toml; a test checks that they do.
 */
export const SCHEDULE: Record<string, Job[]> = {
  "*/5 * * * *": [dbHealthCheck],
  "0 * * * *": [incompleteUploadCleanup],
  "17 3 * * *": [partitionUpkeep],
  "41 * * * *": [flakeRecompute],
};

export class UnknownScheduleError extends Error {}

export async function runScheduled(cron: string, scheduledTime: Date, env: Bindings): Promise<void> {
  const jobs = SCHEDULE[cron];
  if (!jobs) {
    log.error("scheduled.unknown_cron", { cron });
    throw new UnknownScheduleError(`no jobs are scheduled for cron "${cron}"`);
  }
  const config = loadConfig(env);
  const db = config.DATABASE_URL ? createDb({ ...config, DATABASE_URL: config.DATABASE_URL }) : undefined;
  // Every job runs even when an earlier one fails; the invocation fails if any did.
  const failed: string[] = [];
  for (const job of jobs) {
    const started = Date.now();
    try {
      await job({ config, db, scheduledTime });
      log.info("scheduled.job_done", { cron, job: job.name, ms: Date.now() - started });
    } catch (error) {
      failed.push(job.name);
      log.error("scheduled.job_failed", { cron, job: job.name, ...describeFailure(error) });
    }
  }
  if (failed.length) throw new Error(`scheduled jobs failed: ${failed.join(", ")}`);
}
