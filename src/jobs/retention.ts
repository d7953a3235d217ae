import { log } from "../lib/logger";
import { runRetention } from "../services/retention";
import { DEFAULT_LEASE_MS, type Job, skipped } from "./types";

/**
 * Daily retention (ST-317): archive test runs past each repository's retention to the ARCHIVE bucket, then
 * remove them and the rest of the data with a retention (src/services/retention). The scheduled time is the
 * cut-off. Budgets keep one run inside a scheduled invocation; what is left is done by the next run, which
 * resumes from the archive manifests.
 */
export const retention: Job = {
  name: "retention",
  leaseMs: DEFAULT_LEASE_MS,
  async run({ db, env, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    if (!env.ARCHIVE) return skipped("the ARCHIVE bucket binding is missing: nothing is removed unarchived");
    const started = Date.now();
    const counts = await runRetention({ db, now: () => scheduledTime }, env.ARCHIVE, scheduledTime);
    const numeric = {
      ...counts,
      partitionsDropped: counts.partitionsDropped.length,
      complete: counts.complete ? 1 : 0,
    };
    log.info("job.retention", { ...numeric, partitions: counts.partitionsDropped, ms: Date.now() - started });
    return { outcome: "succeeded", counts: numeric, note: counts.complete ? undefined : "cut short; resumes next run" };
  },
};
