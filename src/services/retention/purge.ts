import { sql } from "drizzle-orm";
import type { ServiceContext } from "../context";

/** Retention of what has no per-repository setting (days before the scheduled time). */
export const TELEMETRY_RETENTION_DAYS = 30;
export const READ_NOTIFICATION_RETENTION_DAYS = 90;
/**
 * The append-only history's horizons, purged through anchorpipe_purge_append_only(): a year of the security
 * audit trail (retention_purge rows included), two years of role changes (who had access when is asked long
 * after the fact), three years of data-subject-request timelines (the accountability record of a request).
 */
export const APPEND_ONLY_RETENTION_DAYS = {
  audit_logs: 365,
  role_audit_logs: 730,
  data_subject_request_events: 1095,
} as const;
/** Rows per DELETE statement. */
export const DELETE_BATCH = 5_000;

const DAY_MS = 24 * 60 * 60 * 1000;
export const daysBefore = (at: Date, days: number) => new Date(at.getTime() - days * DAY_MS);

/** One repository's rows in one month of test_runs older than the loosest cut-off. */
export interface MonthGroup {
  repoId: string;
  month: string;
  retentionDays: number;
  /** scheduledTime − retentionDays: runs created before it are past retention. */
  cutoff: Date;
  rows: number;
  expired: number;
}

/**
 * The repositories and months of test_runs that hold rows past some repository's retention, with each
 * repository's cut-off (retention_days, 30 without a config row). Scans only partitions older than the loosest
 * cut-off (scheduledTime − the shortest retention), pruned at plan time; in steady state those hold the rows
 * of long-retention repositories and the day that just expired.
 */
export async function expiredMonths(ctx: ServiceContext, scheduledTime: Date): Promise<MonthGroup[]> {
  const { db } = ctx;
  const at = scheduledTime.toISOString();
  const shortest = await db.execute<{ days: number }>(sql`
    select least(30, coalesce(min(retention_days), 30))::int as days from repository_configs`);
  const loosest = daysBefore(scheduledTime, shortest.rows[0].days).toISOString();
  const result = await db.execute<{ repo_id: string; month: string; days: number; rows: number; expired: number }>(sql`
    select t.repo_id, to_char(date_trunc('month', t.created_at at time zone 'UTC'), 'YYYY-MM') as month,
      coalesce(rc.retention_days, 30)::int as days, count(*)::int as rows,
      count(*) filter (where t.created_at < ${at}::timestamptz - make_interval(days => coalesce(rc.retention_days, 30)))::int as expired
    from test_runs t
    left join repository_configs rc on rc.repo_id = t.repo_id
    where t.created_at < ${loosest}::timestamptz
    group by 1, 2, 3
    order by 2, 1`);
  return result.rows.map((r) => ({
    repoId: r.repo_id,
    month: r.month,
    retentionDays: r.days,
    cutoff: daysBefore(scheduledTime, r.days),
    rows: r.rows,
    expired: r.expired,
  }));
}

/**
 * Deletes up to `maxBatches` × DELETE_BATCH runs of the repository with from <= created_at < until, by keyset on
 * id (the range prunes to one partition; its primary key serves the order). Returns the runs deleted and whether
 * the range is empty now.
 */
export async function deleteRunRange(
  { db }: ServiceContext,
  input: { repoId: string; from: Date; until: Date; maxBatches: number; stopAt?: number },
): Promise<{ deleted: number; batches: number; done: boolean }> {
  let deleted = 0;
  let batches = 0;
  let afterId = "00000000-0000-0000-0000-000000000000";
  while (batches < input.maxBatches && (input.stopAt === undefined || Date.now() < input.stopAt)) {
    const result = await db.execute<{ count: number; last: string | null }>(sql`
      with batch as (
        select id, created_at from test_runs
        where repo_id = ${input.repoId}::uuid and created_at >= ${input.from.toISOString()}::timestamptz
          and created_at < ${input.until.toISOString()}::timestamptz and id > ${afterId}::uuid
        order by id limit ${DELETE_BATCH}::int
      ), gone as (
        delete from test_runs t using batch b where t.id = b.id and t.created_at = b.created_at returning t.id
      )
      select count(*)::int as count, max(id::text) as last from gone`);
    batches++;
    const { count, last } = result.rows[0];
    deleted += count;
    if (count < DELETE_BATCH || !last) return { deleted, batches, done: true };
    afterId = last;
  }
  return { deleted, batches, done: false };
}

/** Runs until a statement removes fewer than DELETE_BATCH rows or `maxBatches` statements ran. */
async function inBatches(maxBatches: number, statement: () => Promise<number>): Promise<number> {
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const count = await statement();
    total += count;
    if (count < DELETE_BATCH) break;
  }
  return total;
}

const countOf = (result: { rows: { count: number }[] }) => Number(result.rows[0]?.count ?? 0);

/**
 * Ingestions received before their repository's cut-off with no run left: duplicate detection ends with the
 * runs (schema.md, ingestions). Incomplete uploads are the incomplete-upload job's.
 */
export function deleteOrphanIngestions({ db }: ServiceContext, scheduledTime: Date, maxBatches: number) {
  const at = scheduledTime.toISOString();
  return inBatches(maxBatches, async () =>
    countOf(
      await db.execute<{ count: number }>(sql`
        with gone as (
          delete from ingestions where id in (
            select i.id from ingestions i
            left join repository_configs rc on rc.repo_id = i.repo_id
            where i.received_at < ${at}::timestamptz - make_interval(days => coalesce(rc.retention_days, 30))
              and i.completed_at is not null
              and not exists (select from test_runs r where r.ingestion_id = i.id)
            limit ${DELETE_BATCH}::int)
          returning 1)
        select count(*)::int as count from gone`),
    ),
  );
}

/**
 * ADR 0004: a test case's last_failure_reason is a copy of a run's failure output and must not outlive it.
 * Cleared for the given repositories' test cases when no run of theirs with failure details is left.
 */
export function clearOrphanFailureReasons({ db }: ServiceContext, repoIds: string[], maxBatches: number) {
  if (!repoIds.length) return Promise.resolve(0);
  const repos = `{${repoIds.join(",")}}`;
  return inBatches(maxBatches, async () =>
    countOf(
      await db.execute<{ count: number }>(sql`
        with cleared as (
          update test_cases set last_failure_reason = null where id in (
            select tc.id from test_cases tc
            where tc.repo_id = any(${repos}::uuid[]) and tc.last_failure_reason is not null
              and not exists (select from test_runs r where r.test_case_id = tc.id and r.failure_details is not null)
            limit ${DELETE_BATCH}::int)
          returning 1)
        select count(*)::int as count from cleared`),
    ),
  );
}

export function deleteOldTelemetry({ db }: ServiceContext, scheduledTime: Date, maxBatches: number) {
  const before = daysBefore(scheduledTime, TELEMETRY_RETENTION_DAYS).toISOString();
  return inBatches(maxBatches, async () =>
    countOf(
      await db.execute<{ count: number }>(sql`
        with gone as (
          delete from telemetry_events where id in (
            select id from telemetry_events where event_timestamp < ${before}::timestamptz limit ${DELETE_BATCH}::int)
          returning 1)
        select count(*)::int as count from gone`),
    ),
  );
}

export function deleteOldReadNotifications({ db }: ServiceContext, scheduledTime: Date, maxBatches: number) {
  const before = daysBefore(scheduledTime, READ_NOTIFICATION_RETENTION_DAYS).toISOString();
  return inBatches(maxBatches, async () =>
    countOf(
      await db.execute<{ count: number }>(sql`
        with gone as (
          delete from notifications where id in (
            select id from notifications where read and created_at < ${before}::timestamptz limit ${DELETE_BATCH}::int)
          returning 1)
        select count(*)::int as count from gone`),
    ),
  );
}

/** The append-only tables' history past its horizon, through the one function allowed to delete it (migration 0004). */
export async function purgeAppendOnly({ db }: ServiceContext, scheduledTime: Date) {
  const horizon = (days: number) => daysBefore(scheduledTime, days).toISOString();
  const [audit, roles, dsr] = await db.batch([
    db.execute<{ count: number }>(
      sql`select anchorpipe_purge_append_only('public.audit_logs'::regclass, ${horizon(APPEND_ONLY_RETENTION_DAYS.audit_logs)}::timestamptz)::int as count`,
    ),
    db.execute<{ count: number }>(
      sql`select anchorpipe_purge_append_only('public.role_audit_logs'::regclass, ${horizon(APPEND_ONLY_RETENTION_DAYS.role_audit_logs)}::timestamptz)::int as count`,
    ),
    db.execute<{ count: number }>(
      sql`select anchorpipe_purge_append_only('public.data_subject_request_events'::regclass, ${horizon(APPEND_ONLY_RETENTION_DAYS.data_subject_request_events)}::timestamptz)::int as count`,
    ),
  ]);
  return { auditLogs: countOf(audit), roleAuditLogs: countOf(roles), dsrEvents: countOf(dsr) };
}
