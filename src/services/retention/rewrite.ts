import { sha256Hex } from "../../lib/encoding";
import { gzipWriter } from "../../lib/gzip";
import {
  type ArchiveBucket,
  ArchiveError,
  type ArchiveObject,
  type MonthManifest,
  readManifest,
  writeManifest,
} from "./manifest";

/**
 * Rewriting a part of the test-run archive in place, for erasure (src/services/privacy/archive-erasure.ts):
 * the part keeps its key, its lines (same count and order) and its manifest entry, whose SHA-256 and byte
 * size follow the new object, so `archive:restore` reads it as before.
 *
 * A part is held compressed (at most ~8 MiB, archive.ts) and read as a stream: the decompressed text, ten or
 * more times larger, is never held whole. A part is first only scanned; it is read a second time and
 * rewritten only when a line may name the person, and stored only when a line actually changed.
 *
 * Crash safety: the new object is stored first, with its predecessor's SHA-256 in its custom metadata
 * (`previousSha256`), then the manifest. An object whose checksum is not the manifest's but whose
 * `previousSha256` is, is such an interrupted rewrite: the next pass repairs the manifest entry. Any other
 * mismatch is an error (a damaged archive is for a person to look at, not to paper over).
 */

export interface ListedObject {
  key: string;
  size: number;
  uploaded: Date;
}

/** What a rewrite needs of the bucket beyond the archive's get and put: listing (R2Bucket has it). */
export interface ListingBucket extends ArchiveBucket {
  list(options: {
    prefix?: string;
    startAfter?: string;
    limit?: number;
  }): Promise<{ objects: ListedObject[]; truncated: boolean }>;
}

/** A cheap test on raw NDJSON text that every line the rewriter would change passes (false positives allowed). */
export interface LineMatcher {
  test(text: string): boolean;
  /** Characters a match (with its context) may span: the scan keeps this much of a chunk for the next. */
  overlap: number;
}

/** Rewrites lines (the matcher's hits): one result per line, null where the line stays as it is. */
export type LineRewriter = (lines: string[]) => Promise<(string | null)[]>;

const PART_KEY = /^test-runs\/([0-9a-f-]{36})\/(\d{4}-\d{2})\/part-\d{5}\.ndjson\.gz$/;

export function parsePartKey(key: string): { repoId: string; month: string } | null {
  const match = PART_KEY.exec(key);
  return match ? { repoId: match[1], month: match[2] } : null;
}

export interface PartRewrite {
  /** False when the object is gone (listed, then removed). */
  found: boolean;
  /** A line passed the matcher, so the part was read again and its hits rewritten. */
  candidate: boolean;
  linesRewritten: number;
  /** A new object was stored. */
  rewritten: boolean;
  /** The manifest entry was brought up to date after an interrupted rewrite. */
  manifestRepaired: boolean;
}

/** Lines per rewrite call and the characters they may hold at most: bounds what one batch keeps in memory. */
const BATCH_LINES = 2_000;
const BATCH_CHARS = 2 * 1024 * 1024;

export async function rewritePart(
  bucket: ArchiveBucket,
  key: string,
  input: {
    matcher: LineMatcher;
    rewrite: LineRewriter;
    /** Stored with the new object (e.g. which erasure rewrote it). */
    note: Record<string, string>;
    now: Date;
  },
): Promise<PartRewrite> {
  const result: PartRewrite = {
    found: false,
    candidate: false,
    linesRewritten: 0,
    rewritten: false,
    manifestRepaired: false,
  };
  const object = (await bucket.get(key)) as (ArchiveObject & { customMetadata?: Record<string, string> }) | null;
  if (!object) return result;
  result.found = true;
  const bytes = new Uint8Array(await object.arrayBuffer());
  const sha256 = await sha256Hex(bytes);
  const place = parsePartKey(key);
  const manifest = place ? await readManifest(bucket, place.repoId, place.month) : null;
  const entry = manifest?.parts.find((p) => p.key === key);
  if (manifest && entry && entry.sha256 !== sha256) {
    if (object.customMetadata?.previousSha256 !== entry.sha256)
      throw new ArchiveError(`${key}: SHA-256 ${sha256}, the manifest says ${entry.sha256}`);
    entry.sha256 = sha256;
    entry.bytes = bytes.byteLength;
    await saveManifest(bucket, manifest, input.now);
    result.manifestRepaired = true;
  }

  if (!(await anyMatch(bytes, input.matcher))) return result;
  result.candidate = true;
  const rewritten = await rewriteLines(bytes, input.matcher, input.rewrite);
  result.linesRewritten = rewritten.changed;
  if (!rewritten.changed) return result;

  const newSha256 = await sha256Hex(rewritten.body);
  await bucket.put(key, rewritten.body, {
    sha256: newSha256,
    httpMetadata: { contentType: "application/gzip" },
    customMetadata: { ...object.customMetadata, ...input.note, previousSha256: sha256 },
  });
  result.rewritten = true;
  if (manifest && entry) {
    entry.sha256 = newSha256;
    entry.bytes = rewritten.body.byteLength;
    await saveManifest(bucket, manifest, input.now);
  }
  return result;
}

async function saveManifest(bucket: ArchiveBucket, manifest: MonthManifest, now: Date): Promise<void> {
  manifest.bytes = manifest.parts.reduce((sum, part) => sum + part.bytes, 0);
  manifest.updatedAt = now.toISOString();
  await writeManifest(bucket, manifest);
}

function decompressedText(bytes: Uint8Array): ReadableStreamDefaultReader<string> {
  return new Blob([bytes as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new DecompressionStream("gzip"))
    .pipeThrough(new TextDecoderStream())
    .getReader();
}

/** Whether the matcher hits anywhere in the part; stops at the first hit. */
async function anyMatch(bytes: Uint8Array, matcher: LineMatcher): Promise<boolean> {
  const reader = decompressedText(bytes);
  let tail = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return false;
      const text = tail + value;
      if (matcher.test(text)) return true;
      tail = text.slice(-matcher.overlap);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** The part with its matching lines rewritten, re-compressed; every other byte of text as it was. */
async function rewriteLines(
  bytes: Uint8Array,
  matcher: LineMatcher,
  rewrite: LineRewriter,
): Promise<{ body: Uint8Array<ArrayBuffer>; changed: number }> {
  const gzip = gzipWriter();
  let changed = 0;
  let batch: string[] = [];
  let batchChars = 0;
  const flush = async () => {
    if (!batch.length) return;
    const hits = batch.flatMap((line, index) => (matcher.test(line) ? [index] : []));
    if (hits.length) {
      const replaced = await rewrite(hits.map((index) => batch[index]));
      hits.forEach((index, n) => {
        const line = replaced[n];
        if (line !== null && line !== undefined && line !== batch[index]) {
          batch[index] = line;
          changed++;
        }
      });
    }
    await gzip.write(`${batch.join("\n")}\n`);
    batch = [];
    batchChars = 0;
  };

  const reader = decompressedText(bytes);
  try {
    let partial = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (partial + value).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        batch.push(line);
        batchChars += line.length;
        if (batch.length >= BATCH_LINES || batchChars >= BATCH_CHARS) await flush();
      }
    }
    if (partial) batch.push(partial);
    await flush();
  } catch (error) {
    await reader.cancel().catch(() => {});
    await gzip.abort(error);
    throw error;
  }
  return { body: await gzip.finish(), changed };
}
