import { log } from "../lib/logger";
import { ensureTestRunPartitions } from "../services/partitions";
import { type Job, skipped } from "./types";

/** How many months of test_runs partitions exist ahead of the current one. */
export const PARTITION_MONTHS_AHEAD = 2;

/**
 * Creates the coming months' test_runs partitions before rows need them (months counted from the scheduled
 * time), and reports rows that fell into the default partition (unhealthy: their month had no partition;
 * the health endpoint fails on them). Safe to run any number of times.
 */
export const partitionUpkeep: Job = {
  name: "partition-upkeep",
  async run({ db, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const result = await ensureTestRunPartitions(db, PARTITION_MONTHS_AHEAD, scheduledTime);
    const counts = { created: result.created.length, defaultPartitionRows: result.defaultPartitionRows };
    if (result.created.length) log.info("job.partition_upkeep.created", { partitions: result.created });
    if (result.defaultPartitionRows > 0) log.error("job.partition_upkeep", { ...counts, healthy: false });
    return { outcome: "succeeded", counts };
  },
};
