import { sql } from "drizzle-orm";
import { describeFailure } from "../../lib/db-errors";
import { bytesToHex, randomBytes, sha256Hex } from "../../lib/encoding";
import { log } from "../../lib/logger";
import type { ServiceContext } from "../context";
import type { ListingBucket } from "../retention/rewrite";
import { type ArchiveErasureState, eraseFromArchive, personNeedles } from "./archive-erasure";
import { collectExport, EXPORT_TABLES, exportArchive } from "./export";
import { type RequestView, soleAdminMessage, soleAdminRepos, transition } from "./requests";

/**
 * What the daily job does with data subject requests (src/jobs/privacy-requests.ts): carries out approved
 * ones, and deletes export archives 30 days after completion. Each step is safe to run twice: a request
 * moves out of `processing` only after its work is done (an erasure's archive rewrite may take several
 * runs), and erasure is idempotent.
 */

/** A completed export's archive is kept this long, then deleted (and export_data cleared). */
export const EXPORT_KEEP_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

/** What the job needs of the ARCHIVE bucket (an R2 bucket), so Node tools can compile and call this too. */
export interface ExportBucket {
  put(
    key: string,
    value: ArrayBuffer | ArrayBufferView | string,
    options?: { sha256?: string; httpMetadata?: { contentType?: string }; customMetadata?: Record<string, string> },
  ): Promise<unknown>;
  delete(key: string): Promise<void>;
}

/** The bucket as erasure uses it too: the test-run archive is listed, read and rewritten (R2Bucket is one). */
export interface PrivacyBucket extends ExportBucket, ListingBucket {}

export const exportKey = (requestId: string) => `privacy/exports/${requestId}.zip`;

export interface ExportLocation {
  key: string;
  bytes: number;
  sha256: string;
  rows: Record<string, number>;
}

export interface ProcessCounts {
  exported: number;
  erased: number;
  blocked: number;
  /** Erasures whose archive rewrite ran out of this run's budget: still `processing`, continued next run. */
  erasuresInProgress: number;
  archivePartsScanned: number;
  archivePartsRewritten: number;
  errors: number;
  exportsPurged: number;
}

/** Writes the person's export to the bucket and completes the request. */
export async function carryOutExport(
  ctx: ServiceContext,
  bucket: ExportBucket,
  request: Pick<RequestView, "id" | "userId">,
): Promise<void> {
  const document = await collectExport(ctx, { userId: request.userId, requestId: request.id });
  const body = exportArchive(document);
  const sha256 = await sha256Hex(body);
  const key = exportKey(request.id);
  await bucket.put(key, body, {
    sha256,
    httpMetadata: { contentType: "application/zip" },
    customMetadata: { format: "anchorpipe-export/1" },
  });
  const rows = Object.fromEntries(EXPORT_TABLES.map((table) => [table, document.tables[table].length]));
  const location: ExportLocation = { key, bytes: body.byteLength, sha256, rows };
  await transition(ctx, {
    id: request.id,
    from: "processing",
    to: "completed",
    message: "export ready for download",
    description: "data subject export completed",
    exportData: location as unknown as Record<string, unknown>,
  });
}

/**
 * Erases the person and completes the request; fails it, with the repositories to hand over, while they are
 * the only admin of one. In order, each step safe to repeat:
 *
 * 1. the request's pseudonym is fixed in its metadata (the first run draws it), so the archive and the
 *    database get the same one however many runs it takes;
 * 2. the test-run archive is rewritten (archive-erasure.ts), as far as `stopAt` allows: while parts are left
 *    the request stays `processing` ("in_progress") and the next run continues;
 * 3. the person's own export archives are deleted from the bucket (their rows lose export_data in step 4);
 * 4. anchorpipe_erase_user (migrations 0013/0014) erases them from the database, in one statement;
 * 5. the request is completed, with the counts.
 */
export async function carryOutErasure(
  ctx: ServiceContext,
  bucket: PrivacyBucket,
  request: Pick<RequestView, "id" | "userId">,
  options: { stopAt?: number; maxParts?: number } = {},
): Promise<ErasureOutcome> {
  const repos = await soleAdminRepos(ctx, request.userId);
  if (repos.length) {
    await transition(ctx, {
      id: request.id,
      from: "processing",
      to: "failed",
      message: `blocked: ${soleAdminMessage(repos)}`,
      description: "data subject erasure blocked (sole admin)",
      metadata: { blockedByRepos: repos.map((r) => r.id) },
    });
    return { outcome: "blocked", partsScanned: 0, partsRewritten: 0 };
  }
  const started = await startErasure(ctx, request.id);
  if (!started) return { outcome: "in_progress", partsScanned: 0, partsRewritten: 0 };
  const { pseudonym } = started;
  const rewrittenBefore = started.archive?.partsRewritten ?? 0;
  const archive = await eraseFromArchive(ctx, bucket, {
    requestId: request.id,
    needles: await personNeedles(ctx, request.userId),
    pseudonym,
    state: started.archive,
    save: (state) => saveArchiveProgress(ctx, request.id, state),
    stopAt: options.stopAt ?? Date.now() + DEFAULT_ARCHIVE_BUDGET_MS,
    maxParts: options.maxParts,
  });
  const counts = {
    partsScanned: archive.scannedThisRun,
    partsRewritten: archive.state.partsRewritten - rewrittenBefore,
  };
  if (!archive.done) return { outcome: "in_progress", ...counts };

  const exports = await ctx.db.execute<{ id: string; key: string | null }>(sql`
    select id, export_data ->> 'key' as key from data_subject_requests
    where user_id = ${request.userId} and type = 'export'`);
  const keys = new Set(exports.rows.flatMap((row) => [exportKey(row.id), ...(row.key ? [row.key] : [])]));
  for (const key of keys) await bucket.delete(key);

  const result = await ctx.db.execute<{ rewritten: string }>(
    sql`select anchorpipe_erase_user(${request.userId}::uuid, ${pseudonym}) as rewritten`,
  );
  const { state } = archive;
  await transition(ctx, {
    id: request.id,
    from: "processing",
    to: "completed",
    message: `personal data erased; the account is now ${pseudonym}`,
    description: "data subject erasure completed",
    metadata: {
      pseudonym,
      rowsRewritten: Number(result.rows[0].rewritten),
      archive: {
        partsScanned: state.partsScanned,
        partsRewritten: state.partsRewritten,
        linesRewritten: state.linesRewritten,
        manifestsRepaired: state.manifestsRepaired,
        passes: state.pass - 1,
      },
    },
  });
  return { outcome: "erased", ...counts };
}

export interface ErasureOutcome {
  outcome: "erased" | "blocked" | "in_progress";
  /** Archive parts scanned and rewritten by this run. */
  partsScanned: number;
  partsRewritten: number;
}

/** Wall-clock time the archive rewrite may take per run (the daily invocation also runs retention and rescoring). */
export const DEFAULT_ARCHIVE_BUDGET_MS = 90_000;

/** The request's pseudonym (drawn on the first run, kept after) and archive progress; null if no longer processing. */
async function startErasure(
  ctx: ServiceContext,
  requestId: string,
): Promise<{ pseudonym: string; archive: ArchiveErasureState | null } | null> {
  const drawn = `erased-${bytesToHex(randomBytes(8))}`;
  const result = await ctx.db.execute<{ pseudonym: string; archive: ArchiveErasureState | null }>(sql`
    update data_subject_requests
    set metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('pseudonym', coalesce(metadata ->> 'pseudonym', ${drawn}::text))
    where id = ${requestId} and status = 'processing'
    returning metadata ->> 'pseudonym' as pseudonym, metadata -> 'archiveErasure' as archive`);
  return result.rows[0] ?? null;
}

async function saveArchiveProgress(ctx: ServiceContext, requestId: string, state: ArchiveErasureState) {
  await ctx.db.execute(sql`
    update data_subject_requests
    set metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('archiveErasure', ${JSON.stringify(state)}::jsonb)
    where id = ${requestId} and status = 'processing'`);
}

/**
 * Approved (processing) requests, most urgent first, each on its own: one failing does not stop the others.
 * Erasures share one archive budget (`archiveBudgetMs` of wall-clock time from the start of this call).
 */
export async function processApproved(
  ctx: ServiceContext,
  bucket: PrivacyBucket,
  options: { limit?: number; archiveBudgetMs?: number; archiveMaxParts?: number } = {},
): Promise<ProcessCounts> {
  const counts: ProcessCounts = {
    exported: 0,
    erased: 0,
    blocked: 0,
    erasuresInProgress: 0,
    archivePartsScanned: 0,
    archivePartsRewritten: 0,
    errors: 0,
    exportsPurged: 0,
  };
  const stopAt = Date.now() + (options.archiveBudgetMs ?? DEFAULT_ARCHIVE_BUDGET_MS);
  const due = await ctx.db.execute<{ id: string; userId: string; type: "export" | "deletion" }>(sql`
    select id, user_id as "userId", type from data_subject_requests
    where status = 'processing' order by due_at, id limit ${options.limit ?? 100}`);
  for (const request of due.rows) {
    try {
      if (request.type === "export") {
        await carryOutExport(ctx, bucket, request);
        counts.exported++;
        continue;
      }
      const erasure = await carryOutErasure(ctx, bucket, request, { stopAt, maxParts: options.archiveMaxParts });
      counts.archivePartsScanned += erasure.partsScanned;
      counts.archivePartsRewritten += erasure.partsRewritten;
      if (erasure.outcome === "erased") counts.erased++;
      else if (erasure.outcome === "blocked") counts.blocked++;
      else counts.erasuresInProgress++;
    } catch (error) {
      counts.errors++;
      log.error("privacy.request_failed", {
        requestId: request.id,
        type: request.type,
        ...describeFailure(error),
      });
    }
  }
  return counts;
}

/** Deletes export archives older than EXPORT_KEEP_DAYS (by completion) and clears their export_data. */
export async function purgeExpiredExports(ctx: ServiceContext, bucket: ExportBucket): Promise<number> {
  const cutoff = new Date(ctx.now().getTime() - EXPORT_KEEP_DAYS * DAY_MS).toISOString();
  const expired = await ctx.db.execute<{ id: string; key: string | null }>(sql`
    select id, export_data ->> 'key' as key from data_subject_requests
    where type = 'export' and status = 'completed' and export_data is not null
      and processed_at < ${cutoff}::timestamptz
    order by processed_at limit 500`);
  for (const row of expired.rows) {
    if (row.key) await bucket.delete(row.key);
    await transition(ctx, {
      id: row.id,
      from: "completed",
      to: "completed",
      message: `export archive deleted ${EXPORT_KEEP_DAYS} days after completion`,
      description: "data subject export purged",
      exportData: null,
    });
  }
  return expired.rows.length;
}
