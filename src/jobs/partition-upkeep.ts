import { log } from "../lib/logger";
import { ensureTestRunPartitions } from "../services/partitions";
import type { JobContext } from "./types";

/** How many months of test_runs partitions exist ahead of the current one. */
export const PARTITION_MONTHS_AHEAD = 2;

/**
 * Creates the coming months' test_runs partitions before rows need them, and
 * reports rows that fell into the default partition (unhealthy: their month
 * had no partition). Safe to run any number of times.
 */
export async function partitionUpkeep({ db, scheduledTime }: JobContext): Promise<void> {
  if (!db) {
    log.warn("job.partition_upkeep", { database: "not_configured" });
    return;
  }
  const result = await ensureTestRunPartitions(db, PARTITION_MONTHS_AHEAD, scheduledTime);
  const fields = { created: result.created, defaultPartitionRows: result.defaultPartitionRows };
  if (result.defaultPartitionRows > 0) log.error("job.partition_upkeep", { ...fields, healthy: false });
  else log.info("job.partition_upkeep", { ...fields, healthy: true });
}
