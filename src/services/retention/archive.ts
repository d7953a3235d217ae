import { sql } from "drizzle-orm";
import { sha256Hex } from "../../lib/encoding";
import { gzipWriter } from "../../lib/gzip";
import type { ServiceContext } from "../context";
import {
  type ArchiveBucket,
  type ArchivePart,
  emptyManifest,
  type MonthManifest,
  monthBounds,
  partKey,
  readManifest,
  writeManifest,
} from "./manifest";

/** Limits of one part object; the Worker holds at most one part (compressed) and one page at a time. */
export interface PartLimits {
  /** Runs read per query (keyset page). */
  pageRows: number;
  /** Runs per part object at most. */
  partMaxRows: number;
  /** A part is closed once its compressed size reaches this. */
  partMaxBytes: number;
}

export const DEFAULT_PART_LIMITS: PartLimits = { pageRows: 2_000, partMaxRows: 50_000, partMaxBytes: 8 * 1024 * 1024 };

const NIL_UUID = "00000000-0000-0000-0000-000000000000";

export interface ArchiveMonthResult {
  manifest: MonthManifest;
  /** Parts written by this call. */
  partsWritten: number;
  runsArchived: number;
  /** False when the part budget ran out before `until` was reached. */
  done: boolean;
}

/**
 * Archives the repository's test runs of `month` created before `until` (capped at the month's end), as parts
 * appended to the month's manifest, writing at most `maxParts` parts and none after `stopAt`. Resumes from the manifest: ranges already
 * archived are never read again, and a part is only recorded after its object is stored, so a run cut short
 * anywhere repeats at most the part it was writing (same key, same rows).
 *
 * Runs are read in pages by keyset on id within a fixed created_at range [archivedUntil, until): the range
 * prunes to the month's partition and the primary key (id, created_at) serves the order, so no index beyond
 * the table's own is needed.
 */
export async function archiveRepoMonth(
  ctx: ServiceContext,
  bucket: ArchiveBucket,
  input: {
    repoId: string;
    month: string;
    until: Date;
    maxParts: number;
    /** Epoch ms after which no new part is started (a run's time budget). */
    stopAt?: number;
    limits?: PartLimits;
  },
): Promise<ArchiveMonthResult> {
  const limits = input.limits ?? DEFAULT_PART_LIMITS;
  const { end: monthEnd } = monthBounds(input.month);
  const target = new Date(Math.min(input.until.getTime(), monthEnd.getTime()));
  const manifest =
    (await readManifest(bucket, input.repoId, input.month)) ?? emptyManifest(input.repoId, input.month, ctx.now());
  let partsWritten = 0;
  let runsArchived = 0;
  for (;;) {
    const from = manifest.archivedUntil;
    let until: string;
    let afterId: string;
    if (manifest.pending) {
      ({ until, afterId } = manifest.pending);
    } else {
      if (new Date(from) >= target) break;
      until = target.toISOString();
      afterId = NIL_UUID;
    }
    if (partsWritten >= input.maxParts || (input.stopAt !== undefined && Date.now() >= input.stopAt))
      return { manifest, partsWritten, runsArchived, done: false };
    const part = await writePart(ctx, bucket, {
      repoId: input.repoId,
      key: partKey(input.repoId, input.month, manifest.parts.length + 1),
      from,
      until,
      afterId,
      limits,
    });
    if (part.part) {
      manifest.parts.push(part.part);
      manifest.rows += part.part.rows;
      manifest.bytes += part.part.bytes;
      manifest.firstCreatedAt ??= part.part.firstCreatedAt;
      if (!manifest.lastCreatedAt || part.part.lastCreatedAt > manifest.lastCreatedAt)
        manifest.lastCreatedAt = part.part.lastCreatedAt;
      if (part.part.firstCreatedAt < manifest.firstCreatedAt) manifest.firstCreatedAt = part.part.firstCreatedAt;
      partsWritten++;
      runsArchived += part.part.rows;
    }
    if (part.exhausted) {
      manifest.archivedUntil = until;
      manifest.pending = null;
    } else {
      manifest.pending = { until, afterId: part.part?.lastId ?? afterId };
    }
    manifest.complete = manifest.pending === null && new Date(manifest.archivedUntil) >= monthEnd;
    manifest.updatedAt = ctx.now().toISOString();
    await writeManifest(bucket, manifest);
  }
  return { manifest, partsWritten, runsArchived, done: true };
}

type PageRow = {
  id: string;
  test_case_id: string;
  ingestion_id: string;
  created_ms: number;
  created_at: string;
  line: string;
};

/**
 * Streams runs of [from, until) with id > afterId through a gzip CompressionStream until the part is full or the
 * range is exhausted, then stores the part. Only the compressed bytes of this one part are held.
 */
async function writePart(
  { db }: ServiceContext,
  bucket: ArchiveBucket,
  input: { repoId: string; key: string; from: string; until: string; afterId: string; limits: PartLimits },
): Promise<{ part: ArchivePart | null; exhausted: boolean }> {
  const { limits } = input;
  const gzip = gzipWriter();
  const seenCases = new Set<string>();
  const seenIngestions = new Set<string>();
  let rows = 0;
  let afterId = input.afterId;
  let first: PageRow | undefined;
  let last: PageRow | undefined;
  let minCreated: PageRow | undefined;
  let maxCreated: PageRow | undefined;
  let exhausted = false;
  while (rows < limits.partMaxRows && gzip.compressedBytes < limits.partMaxBytes) {
    const pageSize = Math.min(limits.pageRows, limits.partMaxRows - rows);
    const page = await db.execute<PageRow>(sql`
      select r.id, r.test_case_id, r.ingestion_id, (extract(epoch from r.created_at) * 1000)::float8 as created_ms,
        to_jsonb(r.created_at) #>> '{}' as created_at, to_jsonb(r)::text as line
      from test_runs r
      where r.repo_id = ${input.repoId}::uuid and r.created_at >= ${input.from}::timestamptz
        and r.created_at < ${input.until}::timestamptz and r.id > ${afterId}::uuid
      order by r.id
      limit ${pageSize}::int`);
    const pageRows = page.rows;
    const newCases = [...new Set(pageRows.map((r) => r.test_case_id))].filter((id) => !seenCases.has(id));
    const newIngestions = [...new Set(pageRows.map((r) => r.ingestion_id))].filter((id) => !seenIngestions.has(id));
    const [cases, ingestions] = await referencedRows(db, newCases, newIngestions);
    let text = "";
    for (const row of pageRows) {
      if (!seenIngestions.has(row.ingestion_id)) {
        seenIngestions.add(row.ingestion_id);
        text += `{"kind":"ingestion","row":${ingestions.get(row.ingestion_id)}}\n`;
      }
      if (!seenCases.has(row.test_case_id)) {
        seenCases.add(row.test_case_id);
        text += `{"kind":"test_case","row":${cases.get(row.test_case_id)}}\n`;
      }
      text += `{"kind":"test_run","row":${row.line}}\n`;
      const ms = Number(row.created_ms);
      if (!minCreated || ms < Number(minCreated.created_ms)) minCreated = row;
      if (!maxCreated || ms > Number(maxCreated.created_ms)) maxCreated = row;
    }
    if (pageRows.length) {
      await gzip.write(text);
      first ??= pageRows[0];
      last = pageRows[pageRows.length - 1];
      afterId = last.id;
      rows += pageRows.length;
    }
    if (pageRows.length < pageSize) {
      exhausted = true;
      break;
    }
  }
  const body = await gzip.finish();
  if (!rows || !first || !last || !minCreated || !maxCreated) return { part: null, exhausted };
  const sha256 = await sha256Hex(body);
  // R2 verifies the checksum on upload: a corrupted transfer is an error, not a bad archive.
  await bucket.put(input.key, body, {
    sha256,
    httpMetadata: { contentType: "application/gzip" },
    customMetadata: { rows: String(rows), format: "ndjson+gzip" },
  });
  return {
    part: {
      key: input.key,
      rows,
      testCases: seenCases.size,
      ingestions: seenIngestions.size,
      bytes: body.byteLength,
      sha256,
      firstCreatedAt: minCreated.created_at,
      lastCreatedAt: maxCreated.created_at,
      firstId: first.id,
      lastId: last.id,
    },
    exhausted,
  };
}

/**
 * The test cases (identity columns only: last_failure_reason is not copied) and ingestions a page references,
 * as JSON text by id, in one round trip.
 */
async function referencedRows(
  db: ServiceContext["db"],
  caseIds: string[],
  ingestionIds: string[],
): Promise<[Map<string, string>, Map<string, string>]> {
  if (!caseIds.length && !ingestionIds.length) return [new Map(), new Map()];
  const [cases, ingestions] = await db.batch([
    db.execute<{ id: string; line: string }>(sql`
      select id, jsonb_build_object('id', id, 'repo_id', repo_id, 'path', path, 'name', name, 'framework', framework,
        'suite', suite, 'tags', tags, 'first_seen_at', first_seen_at, 'created_at', created_at)::text as line
      from test_cases where id = any(${`{${caseIds.join(",")}}`}::uuid[])`),
    db.execute<{ id: string; line: string }>(sql`
      select id, to_jsonb(i)::text as line from ingestions i where id = any(${`{${ingestionIds.join(",")}}`}::uuid[])`),
  ]);
  return [new Map(cases.rows.map((r) => [r.id, r.line])), new Map(ingestions.rows.map((r) => [r.id, r.line]))];
}
