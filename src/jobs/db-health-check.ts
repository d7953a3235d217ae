import { log } from "../lib/logger";
import { checkDatabase } from "../services/db-health";
import { type Job, skipped } from "./types";

/**
 * The database's reachability and latency, every five minutes: its runs in job_runs are the record (and the
 * health endpoint's "last successful run"); an unreachable database fails the run.
 */
export const dbHealthCheck: Job = {
  name: "db-health",
  leaseMs: 4 * 60 * 1000,
  async run({ db }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const health = await checkDatabase(db);
    if (!health.healthy) {
      log.error("job.db_health", { database: health.reason, latencyMs: health.latencyMs, detail: health.detail });
      throw new Error(`database ${health.reason} after ${health.latencyMs} ms`);
    }
    return { outcome: "succeeded", counts: { latencyMs: health.latencyMs } };
  },
};
