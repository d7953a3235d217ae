import { sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { findSqlState } from "../../lib/db-errors";
import type { HealthPart } from "../health";

/** Open requests due within this many days are counted as due soon. */
export const DUE_SOON_DAYS = 7;

/**
 * Open data subject requests against their deadlines, for /api/health: `warn` while any is past its due
 * date (a legal deadline missed is for a person to act on, not a reason to call the service down), with how
 * many are overdue and due within DUE_SOON_DAYS, and the oldest due date missed. Unknown when unreadable.
 */
export async function dataRequestsHealth(db: Db, now: Date): Promise<HealthPart> {
  try {
    const result = await db.execute<{ overdue: number; dueSoon: number; oldest: string | null }>(sql`
      select count(*) filter (where due_at < ${now.toISOString()}::timestamptz)::int as overdue,
        count(*) filter (where due_at >= ${now.toISOString()}::timestamptz
          and due_at < ${now.toISOString()}::timestamptz + make_interval(days => ${DUE_SOON_DAYS}::int))::int as "dueSoon",
        min(due_at) filter (where due_at < ${now.toISOString()}::timestamptz) as oldest
      from data_subject_requests where status in ('pending', 'processing')`);
    const { overdue, dueSoon, oldest } = result.rows[0];
    return {
      status: overdue > 0 ? "warn" : "ok",
      overdue,
      dueSoon,
      oldestOverdueDueAt: oldest ? new Date(oldest).toISOString() : null,
    };
  } catch (error) {
    return { status: "unknown", reason: `query failed (${findSqlState(error) ?? "no SQLSTATE"})` };
  }
}

const RANK = { ok: 0, unknown: 0, warn: 1, fail: 2 } as const;

/**
 * The jobs part with the data requests inside it (the privacy-requests job is what keeps them on time): a
 * warning there makes an ok or unknown jobs part warn; a failing jobs part stays failing.
 */
export function withDataRequests(jobs: HealthPart, dataRequests: HealthPart): HealthPart {
  const status = RANK[dataRequests.status] > RANK[jobs.status] ? dataRequests.status : jobs.status;
  return { ...jobs, status, dataRequests };
}
