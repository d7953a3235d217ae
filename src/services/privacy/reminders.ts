import { sql } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { DUE_SOON_DAYS } from "./health";

/** What marks a reminder in notifications.metadata (`event`), next to the request's id (`requestId`). */
export const REMINDER_EVENT = "dsr_deadline_reminder";

/**
 * Reminds every platform admin of each open (pending or processing) data subject request due within
 * DUE_SOON_DAYS, or already overdue: one platform-wide notification (repo_id null) per admin and request,
 * ever. The reminder's metadata names the request (`event`, `requestId`), and a request an admin has been
 * reminded of is never reminded again to them, so the daily job sends it once however many runs the window
 * spans; an admin appointed later still gets one. The text names the request by id, type and due date only,
 * never the person. One statement; the job's lease keeps two runs from overlapping.
 */
export async function remindDeadlines(ctx: ServiceContext): Promise<{ dueSoon: number; sent: number }> {
  const now = ctx.now().toISOString();
  const result = await ctx.db.execute<{ dueSoon: number; sent: number }>(sql`
    with due as (
      select id, type, status, due_at, due_at < ${now}::timestamptz as overdue from data_subject_requests
      where status in ('pending', 'processing')
        and due_at < ${now}::timestamptz + make_interval(days => ${DUE_SOON_DAYS}::int)
    ), admins as (
      select id from users where is_platform_admin and deleted_at is null
    ), sent as (
      insert into notifications (repo_id, user_id, type, title, message, severity, action_url, metadata, created_at)
      select null, a.id, 'system_alert',
        case when d.overdue then 'Data request overdue' else 'Data request due soon' end,
        'Data request ' || d.id || ' (' || case d.type when 'deletion' then 'delete' else 'export' end || ', '
          || d.status || ') ' || case when d.overdue then 'was due on ' else 'is due on ' end
          || to_char(d.due_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
        (case when d.overdue then 'error' else 'warning' end)::notification_severity,
        '/api/admin/data-requests?status=' || d.status,
        jsonb_build_object('event', ${REMINDER_EVENT}::text, 'requestId', d.id, 'dueAt', d.due_at),
        ${now}::timestamptz
      from due d cross join admins a
      where not exists (
        select 1 from notifications n
        where n.user_id = a.id and n.repo_id is null
          and n.metadata ->> 'event' = ${REMINDER_EVENT}::text and n.metadata ->> 'requestId' = d.id::text)
      returning 1
    )
    select (select count(*) from due)::int as "dueSoon", (select count(*) from sent)::int as sent`);
  return result.rows[0];
}
