import { sql } from "drizzle-orm";
import type { ServiceContext } from "./context";
import { cursorTime } from "./keyset";

export type AuditEntryView = {
  id: string;
  actorId: string | null;
  action: string;
  subject: string;
  subjectId: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  requestId: string | null;
  createdAt: Date;
};

export interface AuditFilter {
  /** Only rows about this repository (subject_id), for a repository's own audit log. */
  repoId?: string;
  action?: string;
  actorId?: string;
  subject?: string;
  from?: Date;
  to?: Date;
}

type Row = Omit<AuditEntryView, "createdAt"> & { createdAt: string; cursorAt: string };

/**
 * Audit rows, newest first, keyed by (created_at, id). Addresses and user
 * agents are not returned: the log is read by repository admins.
 */
export async function listAudit(
  ctx: ServiceContext,
  filter: AuditFilter,
  page: { limit: number; after: [string, string] | null },
): Promise<(AuditEntryView & { cursorAt: string })[]> {
  const after = page.after;
  const result = await ctx.db.execute<Row>(sql`
    select id, actor_id as "actorId", action, subject, subject_id as "subjectId", description, metadata,
      request_id as "requestId", created_at as "createdAt", ${cursorTime(sql`created_at`)} as "cursorAt"
    from audit_logs
    where true
      ${filter.repoId ? sql`and subject_id = ${filter.repoId}` : sql``}
      ${filter.action ? sql`and action = ${filter.action}::audit_action` : sql``}
      ${filter.actorId ? sql`and actor_id = ${filter.actorId}` : sql``}
      ${filter.subject ? sql`and subject = ${filter.subject}::audit_subject` : sql``}
      ${filter.from ? sql`and created_at >= ${filter.from.toISOString()}` : sql``}
      ${filter.to ? sql`and created_at < ${filter.to.toISOString()}` : sql``}
      ${after ? sql`and (created_at, id) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``}
    order by created_at desc, id desc limit ${page.limit}`);
  return result.rows.map((row) => ({ ...row, createdAt: new Date(row.createdAt) }));
}
