import { auditQuery } from "../audit";
import type { ServiceContext } from "../context";
import { dropTestRunPartitionsBefore } from "../partitions";
import { archiveRepoMonth, DEFAULT_PART_LIMITS, type PartLimits } from "./archive";
import { type ArchiveBucket, monthBounds } from "./manifest";
import {
  clearOrphanFailureReasons,
  deleteOldReadNotifications,
  deleteOldTelemetry,
  deleteOrphanIngestions,
  deleteRunRange,
  expiredMonths,
  type MonthGroup,
  purgeAppendOnly,
} from "./purge";

export type { ArchiveBucket } from "./manifest";

export interface RetentionOptions {
  /** Archive part objects written per run at most; the rest waits for the next run. */
  maxParts?: number;
  /** DELETE statements per kind of row per run at most. */
  maxDeleteBatches?: number;
  /**
   * Wall-clock budget of the archive and run deletes, in ms: no part or batch starts after it. A scheduled
   * invocation may run 15 minutes and the daily one also runs the rescoring (up to 8), so 5 by default.
   */
  budgetMs?: number;
  limits?: PartLimits;
}

export const DEFAULT_MAX_PARTS = 200;
export const DEFAULT_MAX_DELETE_BATCHES = 400;
export const DEFAULT_BUDGET_MS = 5 * 60 * 1000;

export interface RetentionCounts {
  /** Repository-months with runs past retention. */
  repoMonths: number;
  partsArchived: number;
  runsArchived: number;
  partitionsDropped: string[];
  runsDeleted: number;
  ingestionsDeleted: number;
  failureReasonsCleared: number;
  telemetryDeleted: number;
  readNotificationsDeleted: number;
  auditLogsPurged: number;
  roleAuditLogsPurged: number;
  dsrEventsPurged: number;
  /** False when a budget ran out: the next run carries on where this one stopped. */
  complete: boolean;
}

/**
 * Retention (ST-317) as of `scheduledTime`, the cut-off for everything:
 *
 * 1. Archive: every repository's runs created before scheduledTime − retention_days (30 without a config row)
 *    go to the bucket, one manifest and gzip NDJSON parts per repository and month (manifest.ts).
 * 2. Remove, only what the manifests say is archived:
 *    - whole monthly partitions, when every repository with rows in them is past its cut-off for the whole
 *      month and the archive has caught up (DROP through the SECURITY DEFINER function: no row-by-row work);
 *    - otherwise the archived runs past retention, in batched DELETEs.
 * 3. Telemetry older than 30 days, read notifications older than 90 days, ingestions with no run left,
 *    test_cases.last_failure_reason whose runs are gone (ADR 0004), the append-only tables past their horizons.
 * 4. One audit_logs row, retention_purge, with the counts.
 *
 * Safe to repeat and to cut short (budgets): a later run resumes from the manifests, archives nothing twice and
 * deletes nothing that is not archived.
 */
export async function runRetention(
  ctx: ServiceContext,
  bucket: ArchiveBucket,
  scheduledTime: Date,
  options: RetentionOptions = {},
): Promise<RetentionCounts> {
  const maxDeleteBatches = options.maxDeleteBatches ?? DEFAULT_MAX_DELETE_BATCHES;
  let partsLeft = options.maxParts ?? DEFAULT_MAX_PARTS;
  // The budget is about this invocation's running time, so it is the clock; the cut-off stays scheduledTime.
  const stopAt = Date.now() + (options.budgetMs ?? DEFAULT_BUDGET_MS);
  const groups = await expiredMonths(ctx, scheduledTime);
  const expired = groups.filter((g) => g.expired > 0);
  const counts: RetentionCounts = {
    repoMonths: expired.length,
    partsArchived: 0,
    runsArchived: 0,
    partitionsDropped: [],
    runsDeleted: 0,
    ingestionsDeleted: 0,
    failureReasonsCleared: 0,
    telemetryDeleted: 0,
    readNotificationsDeleted: 0,
    auditLogsPurged: 0,
    roleAuditLogsPurged: 0,
    dsrEventsPurged: 0,
    complete: true,
  };

  // 1. Archive, oldest month first. `archived` is how far each repository-month is archived now.
  const archived = new Map<MonthGroup, Date>();
  for (const group of expired) {
    const result = await archiveRepoMonth(ctx, bucket, {
      repoId: group.repoId,
      month: group.month,
      until: group.cutoff,
      maxParts: partsLeft,
      stopAt,
      limits: options.limits ?? DEFAULT_PART_LIMITS,
    });
    partsLeft -= result.partsWritten;
    counts.partsArchived += result.partsWritten;
    counts.runsArchived += result.runsArchived;
    archived.set(group, new Date(result.manifest.archivedUntil));
    if (!result.done) {
      counts.complete = false;
      break;
    }
  }

  // 2a. Whole partitions: the longest run of oldest months in which every repository with rows is past its
  // cut-off for the whole month and archived to its end. Months with no rows at all are not in `groups`;
  // they are dropped with the months around them.
  const months = [...new Set(groups.map((g) => g.month))].sort();
  let dropBefore: Date | null = null;
  for (const month of months) {
    const { end } = monthBounds(month);
    const droppable = groups
      .filter((g) => g.month === month)
      .every((g) => end <= g.cutoff && (archived.get(g)?.getTime() ?? 0) >= end.getTime());
    if (!droppable) break;
    dropBefore = end;
  }
  if (dropBefore) counts.partitionsDropped = await dropTestRunPartitionsBefore(ctx.db, dropBefore);

  // 2b. Batched deletes of archived runs past retention in the partitions that stay.
  let batchesLeft = maxDeleteBatches;
  for (const group of expired) {
    const { start, end } = monthBounds(group.month);
    if (dropBefore && end <= dropBefore) continue;
    const archivedUntil = archived.get(group);
    if (!archivedUntil) continue;
    const until = new Date(Math.min(archivedUntil.getTime(), group.cutoff.getTime()));
    if (until <= start) continue;
    if (batchesLeft <= 0 || Date.now() >= stopAt) {
      counts.complete = false;
      break;
    }
    const result = await deleteRunRange(ctx, {
      repoId: group.repoId,
      from: start,
      until,
      maxBatches: batchesLeft,
      stopAt,
    });
    batchesLeft -= result.batches;
    counts.runsDeleted += result.deleted;
    if (!result.done) counts.complete = false;
  }

  // 3. What hangs off the runs, and the rest of the data with a retention.
  const touched = [...new Set(expired.filter((g) => archived.has(g)).map((g) => g.repoId))];
  counts.ingestionsDeleted = await deleteOrphanIngestions(ctx, scheduledTime, maxDeleteBatches);
  counts.failureReasonsCleared = await clearOrphanFailureReasons(ctx, touched, maxDeleteBatches);
  counts.telemetryDeleted = await deleteOldTelemetry(ctx, scheduledTime, maxDeleteBatches);
  counts.readNotificationsDeleted = await deleteOldReadNotifications(ctx, scheduledTime, maxDeleteBatches);
  const history = await purgeAppendOnly(ctx, scheduledTime);
  counts.auditLogsPurged = history.auditLogs;
  counts.roleAuditLogsPurged = history.roleAuditLogs;
  counts.dsrEventsPurged = history.dsrEvents;

  // 4. The audit row (after the purge, so it is never its own victim).
  await auditQuery(ctx.db, {
    action: "retention_purge",
    subject: "system",
    subjectId: "test_runs",
    description: counts.complete ? "retention run complete" : "retention run cut short; the next run resumes",
    metadata: { scheduledTime: scheduledTime.toISOString(), ...counts },
    requestId: ctx.requestId ?? null,
    createdAt: ctx.now(),
  });
  return counts;
}
