import { type FlateError, Inflate, Unzip, type UnzipDecoder } from "fflate";
import { DETECTION_WINDOW, detectFormat, type ReportFormat } from "../../ingestion/formats/detect";
import { concatBytes } from "../../lib/body";

/**
 * Which artifacts of a workflow run hold test reports, and the reports inside their zips. Everything here is
 * bounded: an artifact's zip is read from memory (its download is capped), every file is inflated as a
 * stream and dropped the moment it passes its cap, so a zip bomb costs at most the caps below.
 */

/** Artifact names the App reads when a repository configured none (README, GitHub App). */
export const DEFAULT_ARTIFACT_PATTERNS: readonly string[] = ["*test-results*", "*junit*", "*report*"];

export const ARTIFACT_LIMITS = {
  /** An artifact's zip as downloaded. Test-result artifacts are kilobytes to a few megabytes. */
  zipBytes: 20 * 1024 * 1024,
  /** One report inside it: the ingestion body cap's default (an upload of one report could be no larger). */
  fileBytes: 5 * 1024 * 1024,
  /** All the reports read from one artifact. */
  totalBytes: 20 * 1024 * 1024,
  /** Entries looked at in one zip. */
  files: 2_000,
} as const;

/**
 * Artifact name patterns: `*` is any run of characters, `?` one character, the rest is literal, case ignored.
 * Names are flat (no folders), so that is all a pattern needs. Matched without a regular expression: the
 * pattern is cut at its stars and each piece is found leftmost in turn (which is optimal for `*`), so a name
 * costs at most its length times the pattern's, whatever either holds.
 */
export function artifactNameMatcher(patterns: readonly string[]): (name: string) => boolean {
  const compiled = patterns.map((pattern) => pattern.toLowerCase().split("*"));
  return (name) => {
    const lower = name.toLowerCase();
    return compiled.some((pieces) => globMatches(pieces, lower));
  };
}

function globMatches(pieces: string[], name: string): boolean {
  const first = pieces[0]!;
  if (pieces.length === 1) return name.length === first.length && pieceAt(first, name, 0);
  const last = pieces[pieces.length - 1]!;
  if (first.length + last.length > name.length) return false;
  if (!pieceAt(first, name, 0) || !pieceAt(last, name, name.length - last.length)) return false;
  let at = first.length;
  const end = name.length - last.length;
  for (const piece of pieces.slice(1, -1)) {
    let found = -1;
    for (let start = at; start + piece.length <= end; start += 1) {
      if (pieceAt(piece, name, start)) {
        found = start;
        break;
      }
    }
    if (found < 0) return false;
    at = found + piece.length;
  }
  return true;
}

/** Whether `piece` (with `?` for any one character) matches `name` at `start`. */
function pieceAt(piece: string, name: string, start: number): boolean {
  for (let i = 0; i < piece.length; i += 1) {
    if (piece[i] !== "?" && piece[i] !== name[start + i]) return false;
  }
  return true;
}

export interface ZippedReport {
  /** The file's path inside the zip. */
  path: string;
  format: ReportFormat;
  bytes: Uint8Array;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

/** The zip is not one (or is corrupt): retrying will not help. */
export class ArtifactUnreadableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArtifactUnreadableError";
  }
}

/** At most about 4 MiB of output per inflate step. */
const PUSH_BYTES = 4096;

/**
 * fflate's UnzipInflate cannot be stopped: a file dropped at its cap would still be inflated to its end (a
 * bomb's gigabytes, in CPU time). This one ignores the rest of its file once terminated.
 */
class StoppableInflate implements UnzipDecoder {
  static compression = 8;
  ondata: UnzipDecoder["ondata"] = () => {};
  private stopped = false;
  private readonly inflate = new Inflate((data, final) => this.ondata(null, data, final));

  push(chunk: Uint8Array, final: boolean): void {
    if (this.stopped) return;
    try {
      this.inflate.push(chunk, final);
    } catch (error) {
      this.ondata(error as FlateError, new Uint8Array(), final);
    }
  }

  terminate(): void {
    this.stopped = true;
  }
}

type Limits = { fileBytes: number; totalBytes: number; files: number };

/**
 * The test reports in a zip: every file whose content is a format the service parses (detected from its
 * first bytes, as the uploader does), with the files left out and why.
 */
export function reportsInZip(
  zip: Uint8Array,
  limits: Limits = ARTIFACT_LIMITS,
): { reports: ZippedReport[]; skipped: SkippedFile[] } {
  const reports: ZippedReport[] = [];
  const skipped: SkippedFile[] = [];
  let total = 0;
  let seen = 0;
  const unzip = new Unzip();
  unzip.register(StoppableInflate);
  unzip.onfile = (file) => {
    if (file.name.endsWith("/")) return;
    seen += 1;
    if (seen > limits.files) {
      if (seen === limits.files + 1) skipped.push({ path: file.name, reason: `more than ${limits.files} files` });
      return;
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    let done = false;
    const skip = (reason: string) => {
      done = true;
      chunks.length = 0;
      skipped.push({ path: file.name, reason });
      file.terminate();
    };
    file.ondata = (error, data, final) => {
      if (done) return;
      if (error) return skip("could not be inflated");
      size += data.byteLength;
      if (size > limits.fileBytes) return skip(`larger than ${limits.fileBytes} bytes`);
      if (total + size > limits.totalBytes) return skip(`past the artifact's ${limits.totalBytes} bytes of reports`);
      chunks.push(data);
      if (!final) return;
      done = true;
      const bytes = concatBytes(chunks, size);
      const format = detectFormat(decodeHead(bytes));
      if (format === null) {
        skipped.push({ path: file.name, reason: "not a report format the service reads" });
        return;
      }
      total += size;
      reports.push({ path: file.name, format, bytes });
    };
    file.start();
  };
  try {
    // In slices: each push inflates its slice at once, and deflate expands at most about 1,032 times.
    for (let at = 0; at < zip.byteLength; at += PUSH_BYTES) {
      unzip.push(zip.subarray(at, at + PUSH_BYTES), at + PUSH_BYTES >= zip.byteLength);
    }
  } catch (error) {
    throw new ArtifactUnreadableError(`the artifact is not a readable zip (${(error as Error).message})`);
  }
  return { reports, skipped };
}

/** The start of a file as text, for detection; a multi-byte character cut at the end decodes as U+FFFD. */
function decodeHead(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes.subarray(0, DETECTION_WINDOW * 4)).slice(0, DETECTION_WINDOW);
}
