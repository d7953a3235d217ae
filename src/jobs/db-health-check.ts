import { log } from "../lib/logger";
import { checkDatabase } from "../services/db-health";
import type { JobContext } from "./types";

/** Records the database's reachability and latency in the logs; alerts read them. */
export async function dbHealthCheck({ db }: JobContext): Promise<void> {
  if (!db) {
    log.warn("job.db_health", { database: "not_configured" });
    return;
  }
  const health = await checkDatabase(db);
  if (health.healthy) log.info("job.db_health", { database: "connected", latencyMs: health.latencyMs });
  else log.error("job.db_health", { database: health.reason, latencyMs: health.latencyMs, detail: health.detail });
}
