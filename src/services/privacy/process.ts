import { sql } from "drizzle-orm";
import { describeFailure } from "../../lib/db-errors";
import { bytesToHex, randomBytes, sha256Hex } from "../../lib/encoding";
import { log } from "../../lib/logger";
import type { ServiceContext } from "../context";
import { collectExport, EXPORT_TABLES, exportArchive } from "./export";
import { type RequestView, soleAdminMessage, soleAdminRepos, transition } from "./requests";

/**
 * What the daily job does with data subject requests (src/jobs/privacy-requests.ts): carries out approved
 * ones, and deletes export archives 30 days after completion. Each step is safe to run twice: a request
 * moves out of `processing` only after its work is done, and erasure is idempotent.
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
 * Erases the person (anchorpipe_erase_user, migration 0013) and completes the request; fails it, with the
 * repositories to hand over, while they are the only admin of one.
 */
export async function carryOutErasure(
  ctx: ServiceContext,
  request: Pick<RequestView, "id" | "userId">,
): Promise<"erased" | "blocked"> {
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
    return "blocked";
  }
  const pseudonym = `erased-${bytesToHex(randomBytes(8))}`;
  const result = await ctx.db.execute<{ rewritten: string }>(
    sql`select anchorpipe_erase_user(${request.userId}::uuid, ${pseudonym}) as rewritten`,
  );
  await transition(ctx, {
    id: request.id,
    from: "processing",
    to: "completed",
    message: `personal data erased; the account is now ${pseudonym}`,
    description: "data subject erasure completed",
    metadata: { pseudonym, rowsRewritten: Number(result.rows[0].rewritten) },
  });
  return "erased";
}

/** Approved (processing) requests, most urgent first, each on its own: one failing does not stop the others. */
export async function processApproved(
  ctx: ServiceContext,
  bucket: ExportBucket,
  options: { limit?: number } = {},
): Promise<ProcessCounts> {
  const counts: ProcessCounts = { exported: 0, erased: 0, blocked: 0, errors: 0, exportsPurged: 0 };
  const due = await ctx.db.execute<{ id: string; userId: string; type: "export" | "deletion" }>(sql`
    select id, user_id as "userId", type from data_subject_requests
    where status = 'processing' order by due_at, id limit ${options.limit ?? 100}`);
  for (const request of due.rows) {
    try {
      if (request.type === "export") {
        await carryOutExport(ctx, bucket, request);
        counts.exported++;
      } else if ((await carryOutErasure(ctx, request)) === "erased") counts.erased++;
      else counts.blocked++;
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
