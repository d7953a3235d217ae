import { removeIncompleteIngestions } from "../services/ingestion";
import { type Job, skipped } from "./types";

/** An upload still incomplete this long after it was received has been given up by its client. */
export const INCOMPLETE_UPLOAD_MAX_AGE_MS = 60 * 60 * 1000;
/** Uploads removed per statement; the job repeats until none are left, up to `MAX_ROUNDS`. */
const BATCH = 500;
const MAX_ROUNDS = 20;

/**
 * Removes uploads split over several requests whose client stopped before the last one (the ingestion row is
 * still incomplete an hour later), with their runs and the test cases only they created. Incomplete uploads
 * are never counted by reads; this keeps them from lingering. The cut-off is the scheduled time, not the
 * clock, so a late run removes the same rows. What one run leaves (more than MAX_ROUNDS batches) the next
 * hour's run removes.
 */
export const incompleteUploadCleanup: Job = {
  name: "incomplete-upload-cleanup",
  async run({ db, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const cutoff = new Date(scheduledTime.getTime() - INCOMPLETE_UPLOAD_MAX_AGE_MS);
    const ctx = { db, now: () => scheduledTime };
    let removed = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const count = await removeIncompleteIngestions(ctx, { cutoff, limit: BATCH });
      removed += count;
      if (count < BATCH) break;
    }
    return { outcome: "succeeded", counts: { removed } };
  },
};
