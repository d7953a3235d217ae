import { sql } from "drizzle-orm";
import type { ServiceContext } from "../services/context";
import { type Job, skipped } from "./types";

/** Rows deleted per statement and table; a run repeats up to `MAX_ROUNDS` times, the next hour does the rest. */
const BATCH = 5_000;
const MAX_ROUNDS = 20;

/**
 * Deletes one batch of sessions (personal tokens) and verification tokens that expired at or before `cutoff`
 * — `expires <= now` is what authentication refuses as expired — in one request. Returns how many of each.
 */
export async function deleteExpiredSessions(
  ctx: ServiceContext,
  cutoff: Date,
  limit = BATCH,
): Promise<{ sessions: number; verificationTokens: number }> {
  const at = sql`${cutoff.toISOString()}::timestamptz`;
  const [sessions, tokens] = await ctx.db.batch([
    ctx.db.execute<{ n: number }>(sql`
      with gone as (
        delete from sessions where id in (select id from sessions where expires <= ${at} limit ${limit}::int)
        returning 1
      ) select count(*)::int as n from gone`),
    ctx.db.execute<{ n: number }>(sql`
      with gone as (
        delete from verification_tokens
        where id in (select id from verification_tokens where expires <= ${at} limit ${limit}::int)
        returning 1
      ) select count(*)::int as n from gone`),
  ]);
  return { sessions: sessions.rows[0].n, verificationTokens: tokens.rows[0].n };
}

/**
 * Hourly: removes sessions and verification tokens expired as of the scheduled time (never the clock, so a
 * late run deletes no token that was still valid at its trigger). A session's token is only a hash, but an
 * expired one has no use and the table should not grow without bound.
 */
export const expiredSessions: Job = {
  name: "expired-sessions",
  async run({ db, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const ctx = { db, now: () => scheduledTime };
    const counts = { sessions: 0, verificationTokens: 0 };
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const removed = await deleteExpiredSessions(ctx, scheduledTime);
      counts.sessions += removed.sessions;
      counts.verificationTokens += removed.verificationTokens;
      if (removed.sessions < BATCH && removed.verificationTokens < BATCH) break;
    }
    return { outcome: "succeeded", counts };
  },
};
