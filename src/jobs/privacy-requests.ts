import { log } from "../lib/logger";
import { processApproved, purgeExpiredExports } from "../services/privacy/process";
import { remindDeadlines } from "../services/privacy/reminders";
import { DEFAULT_LEASE_MS, type Job, JobFailedError, skipped } from "./types";

/**
 * Daily: carries out approved data subject requests (exports to the ARCHIVE bucket; erasures: the test-run
 * archive in ARCHIVE rewritten within a time budget, possibly over several runs, then the database through
 * anchorpipe_erase_user), deletes export archives 30 days after completion, then reminds platform admins of
 * open requests due within 7 days or overdue (once per admin and request; src/services/privacy), which it
 * also does when the ARCHIVE binding is missing. The
 * scheduled time is the clock of the run. A request that fails stays `processing` and is tried again on the
 * next run; the run then fails, so the ledger and /api/health show it.
 */
export const privacyRequests: Job = {
  name: "privacy-requests",
  leaseMs: DEFAULT_LEASE_MS,
  async run({ db, env, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const ctx = { db, now: () => scheduledTime, actorId: null };
    const remind = async () => {
      const reminders = await remindDeadlines(ctx);
      return { dueSoon: reminders.dueSoon, remindersSent: reminders.sent };
    };
    if (!env.ARCHIVE) {
      // The legal deadlines do not wait for the bucket: admins are reminded even when nothing can be carried out.
      const reminded = await remind();
      return {
        ...skipped("the ARCHIVE bucket binding is missing: exports cannot be written or purged"),
        counts: reminded,
      };
    }
    const counts = await processApproved(ctx, env.ARCHIVE);
    counts.exportsPurged = await purgeExpiredExports(ctx, env.ARCHIVE);
    const all = { ...counts, ...(await remind()) };
    log.info("job.privacy_requests", all);
    if (counts.errors) {
      throw new JobFailedError(`${counts.errors} data subject request(s) could not be carried out`, all);
    }
    return { outcome: "succeeded", counts: all };
  },
};
