/**
 * The layout of the test-run archive in object storage (the ARCHIVE R2 bucket), shared by the retention job
 * that writes it and the restore command that reads it.
 *
 *   test-runs/<repoId>/<YYYY-MM>/manifest.json
 *   test-runs/<repoId>/<YYYY-MM>/part-00001.ndjson.gz
 *   test-runs/<repoId>/<YYYY-MM>/part-00002.ndjson.gz …
 *
 * A part is a complete gzip file of NDJSON lines `{"kind": "test_case" | "ingestion" | "test_run", "row": {…}}`,
 * each row as PostgreSQL's `to_jsonb` of the table's row (snake_case columns). Within a part a test case and an
 * ingestion line come before the first run that references them, so every part restores on its own. The
 * manifest is rewritten after every part and is the record of what is archived: rows of the repository in the
 * month with `created_at < archivedUntil` are all in parts, and `pending` is a range in progress (rows in it with
 * `id <= afterId` are in parts already).
 */

/** Bumped when a line's shape changes; restore refuses versions it does not know. */
export const ARCHIVE_SCHEMA_VERSION = 1;
export const MANIFEST_KIND = "anchorpipe.test_runs.archive";

/** The parts of R2Bucket the archive uses (R2Bucket satisfies it; so does wrangler's platform proxy in Node). */
export interface ArchiveBucket {
  get(key: string): Promise<ArchiveObject | null>;
  put(
    key: string,
    value: ArrayBuffer | ArrayBufferView | string,
    options?: {
      sha256?: string;
      httpMetadata?: { contentType?: string };
      customMetadata?: Record<string, string>;
    },
  ): Promise<unknown>;
}

export interface ArchiveObject {
  readonly body: ReadableStream<Uint8Array>;
  arrayBuffer(): Promise<ArrayBuffer>;
  text(): Promise<string>;
}

export interface ArchivePart {
  key: string;
  /** Test runs in the part (test_case and ingestion lines are counted apart). */
  rows: number;
  testCases: number;
  ingestions: number;
  /** Size of the gzip object. */
  bytes: number;
  /** Hex SHA-256 of the gzip object, as stored (R2 checked it on upload). */
  sha256: string;
  /** The part's runs' created_at range and id range (ids ascending within the range being archived). */
  firstCreatedAt: string;
  lastCreatedAt: string;
  firstId: string;
  lastId: string;
}

export interface MonthManifest {
  kind: typeof MANIFEST_KIND;
  schemaVersion: number;
  repoId: string;
  /** YYYY-MM (UTC), the test_runs partition's month. */
  month: string;
  /** Every run of the repository with monthStart <= created_at < archivedUntil is in `parts`. */
  archivedUntil: string;
  /** A range being archived when the last run stopped: [archivedUntil, until), runs with id <= afterId done. */
  pending: { until: string; afterId: string } | null;
  /** archivedUntil reached the end of the month: nothing of this repository and month is left to archive. */
  complete: boolean;
  rows: number;
  bytes: number;
  firstCreatedAt: string | null;
  lastCreatedAt: string | null;
  parts: ArchivePart[];
  updatedAt: string;
}

export const monthPrefix = (repoId: string, month: string) => `test-runs/${repoId}/${month}/`;
export const manifestKey = (repoId: string, month: string) => `${monthPrefix(repoId, month)}manifest.json`;
export const partKey = (repoId: string, month: string, index: number) =>
  `${monthPrefix(repoId, month)}part-${String(index).padStart(5, "0")}.ndjson.gz`;

/** The month's bounds in UTC: [start, end). */
export function monthBounds(month: string): { start: Date; end: Date } {
  const match = /^(\d{4})-(\d{2})$/.exec(month);
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 12) throw new RangeError(`not a YYYY-MM month: ${month}`);
  const year = Number(match[1]);
  const index = Number(match[2]) - 1;
  return { start: new Date(Date.UTC(year, index, 1)), end: new Date(Date.UTC(year, index + 1, 1)) };
}

export function emptyManifest(repoId: string, month: string, now: Date): MonthManifest {
  return {
    kind: MANIFEST_KIND,
    schemaVersion: ARCHIVE_SCHEMA_VERSION,
    repoId,
    month,
    archivedUntil: monthBounds(month).start.toISOString(),
    pending: null,
    complete: false,
    rows: 0,
    bytes: 0,
    firstCreatedAt: null,
    lastCreatedAt: null,
    parts: [],
    updatedAt: now.toISOString(),
  };
}

export class ArchiveError extends Error {
  override name = "ArchiveError";
}

export async function readManifest(
  bucket: ArchiveBucket,
  repoId: string,
  month: string,
): Promise<MonthManifest | null> {
  const object = await bucket.get(manifestKey(repoId, month));
  if (!object) return null;
  const manifest = JSON.parse(await object.text()) as MonthManifest;
  if (manifest.kind !== MANIFEST_KIND || manifest.schemaVersion !== ARCHIVE_SCHEMA_VERSION) {
    throw new ArchiveError(
      `${manifestKey(repoId, month)} is not a version ${ARCHIVE_SCHEMA_VERSION} test-run archive manifest`,
    );
  }
  return manifest;
}

export async function writeManifest(bucket: ArchiveBucket, manifest: MonthManifest): Promise<void> {
  await bucket.put(manifestKey(manifest.repoId, manifest.month), JSON.stringify(manifest, null, 2), {
    httpMetadata: { contentType: "application/json" },
  });
}
