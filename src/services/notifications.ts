import { sql } from "drizzle-orm";
import type { ServiceContext } from "./context";
import { cursorTime } from "./keyset";

export type NotificationView = {
  id: string;
  /** Null for a platform-wide notification (always addressed to one person). */
  repoId: string | null;
  type: string;
  title: string;
  message: string;
  severity: string;
  read: boolean;
  actionUrl: string | null;
  createdAt: Date;
  readAt: Date | null;
};

type Row = Omit<NotificationView, "createdAt" | "readAt"> & {
  createdAt: string;
  readAt: string | null;
  cursorAt: string;
};

const view = (row: Row): NotificationView & { cursorAt: string } => ({
  ...row,
  createdAt: new Date(row.createdAt),
  readAt: row.readAt ? new Date(row.readAt) : null,
});

const columns = sql`id, repo_id as "repoId", type, title, message, severity, read, action_url as "actionUrl",
  created_at as "createdAt", read_at as "readAt", ${cursorTime(sql`created_at`)} as "cursorAt"`;

/**
 * A person's notifications: their own, and the repository-wide ones (user_id null: a flaky test whose
 * owners are not people with access) of every repository they hold a role on, while they hold it. A
 * repository-wide notification has one read flag, shared by everyone who sees it. A platform-wide one
 * (repo_id null: a data request's deadline reminder to a platform admin) always names its person.
 */
const addressedTo = (userId: string) => sql`(user_id = ${userId} or (user_id is null and repo_id in (
  select repo_id from user_repo_roles where user_id = ${userId})))`;

/** The caller's own notifications, newest first, keyed by (created_at, id). */
export async function listNotifications(
  ctx: ServiceContext,
  userId: string,
  filter: { unread?: boolean },
  page: { limit: number; after: [string, string] | null },
): Promise<(NotificationView & { cursorAt: string })[]> {
  const after = page.after;
  const result = await ctx.db.execute<Row>(sql`
    select ${columns} from notifications
    where ${addressedTo(userId)} ${filter.unread ? sql`and not read` : sql``}
      ${after ? sql`and (created_at, id) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``}
    order by created_at desc, id desc limit ${page.limit}`);
  return result.rows.map(view);
}

/** Marks one of the caller's notifications read (idempotent); null when the caller has no such notification. */
export async function markNotificationRead(
  ctx: ServiceContext,
  userId: string,
  notificationId: string,
): Promise<(NotificationView & { cursorAt: string }) | null> {
  const now = ctx.now().toISOString();
  const updated = await ctx.db.execute<Row>(sql`
    with marked as (
      update notifications set read = true, read_at = coalesce(read_at, ${now})
      where id = ${notificationId} and ${addressedTo(userId)}
      returning ${columns}
    ), audit as (
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, request_id, created_at)
      select ${userId}, 'other', 'user', ${userId}, 'notification marked read',
        jsonb_build_object('event', 'notification_read', 'notificationId', id), ${ctx.requestId ?? null}, ${now}
      from marked
    )
    select * from marked`);
  return updated.rows[0] ? view(updated.rows[0]) : null;
}
