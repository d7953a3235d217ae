/**
 * What the uploader prints. Information goes to stdout, warnings and errors to stderr; a progress bar
 * replaces the per-part lines' flow on a terminal when there are several parts. Nothing here ever sees the
 * secret.
 */
import { MultiBar, Presets } from "cli-progress";
import type { Part } from "./parts.ts";

export type PartStatus = "accepted" | "duplicate" | "rejected" | "unavailable" | "skipped";

export interface ServerSummary {
  tests_parsed?: number;
  tests_failed?: number;
  tests_skipped?: number;
  flaky_candidates?: number;
}

export interface ServerError {
  code?: string;
  message: string;
  requestId?: string;
  details?: unknown;
}

export interface PartOutcome {
  index: number;
  key: string;
  results: number;
  status: PartStatus;
  /** Last HTTP status seen; absent when the service was never reached. */
  httpStatus?: number;
  attempts: number;
  ingestionId?: string;
  summary?: ServerSummary;
  error?: ServerError;
}

export interface RetryInfo {
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface Reporter {
  start(parts: Part[]): void;
  retry(part: Part, info: RetryInfo): void;
  done(part: Part, outcome: PartOutcome): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  finish(): void;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function label(part: Part): string {
  return `part ${part.index + 1}/${part.total}`;
}

export function describeOutcome(part: Part, outcome: PartOutcome): string {
  const s = outcome.summary;
  const counts = s
    ? `${plural(s.tests_parsed ?? 0, "test")} parsed, ${s.tests_failed ?? 0} failed, ${s.tests_skipped ?? 0} skipped` +
      (s.flaky_candidates ? `, ${plural(s.flaky_candidates, "flaky candidate")}` : "")
    : `${plural(part.results, "result")} sent`;
  const ingestion = outcome.ingestionId ? ` (ingestion ${outcome.ingestionId})` : "";
  switch (outcome.status) {
    case "accepted":
      return `${label(part)}: ${counts}${ingestion}`;
    case "duplicate":
      return `${label(part)}: already received earlier (duplicate, nothing stored twice): ${counts}${ingestion}`;
    case "skipped":
      return `${label(part)}: ${outcome.error?.message ?? "skipped"}`;
    default: {
      const e = outcome.error;
      const status = outcome.httpStatus ? `HTTP ${outcome.httpStatus}` : "";
      const code = e?.code ? ` ${e.code}` : "";
      const request = e?.requestId ? ` (request ${e.requestId})` : "";
      const lines = [
        outcome.status === "rejected"
          ? `${label(part)} rejected: ${status}${code}: ${e?.message ?? ""}${request}`
          : `${label(part)} not sent after ${plural(outcome.attempts, "attempt")}: ${status ? `${status}${code}: ` : ""}${e?.message ?? ""}${request}`,
      ];
      if (Array.isArray(e?.details)) {
        for (const d of e.details.slice(0, 20) as Array<{ path?: string; message?: string }>) {
          lines.push(`    ${d.path ?? ""}: ${d.message ?? JSON.stringify(d)}`);
        }
        if (e.details.length > 20) lines.push(`    … and ${e.details.length - 20} more`);
      }
      if (outcome.httpStatus === 413) lines.push("    the service's size limit is lower: try a smaller --max-bytes");
      return lines.join("\n");
    }
  }
}

export interface ReporterOptions {
  quiet?: boolean;
  /** Draw a progress bar (only used when there is more than one part). */
  progress?: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export function createReporter(options: ReporterOptions = {}): Reporter {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  let bars: MultiBar | undefined;
  let bar: ReturnType<MultiBar["create"]> | undefined;
  let sent = 0;

  const out = (line: string) => {
    if (options.quiet) return;
    if (bars) bars.log(`${line}\n`);
    else stdout.write(`${line}\n`);
  };
  const err = (line: string) => {
    if (bars) bars.log(`${line}\n`);
    else stderr.write(`${line}\n`);
  };

  return {
    start(parts) {
      if (options.progress && !options.quiet && parts.length > 1) {
        bars = new MultiBar(
          {
            format: "uploading [{bar}] {value}/{total} parts | {results} results",
            hideCursor: true,
            clearOnComplete: false,
            stream: stdout as NodeJS.WriteStream,
          },
          Presets.shades_classic,
        );
        bar = bars.create(parts.length, 0, { results: 0 });
      }
    },
    retry(part, info) {
      out(
        `${label(part)}: ${info.reason}, retrying in ${(info.delayMs / 1000).toFixed(1)} s (attempt ${info.attempt + 1})`,
      );
    },
    done(part, outcome) {
      const line = describeOutcome(part, outcome);
      if (outcome.status === "accepted" || outcome.status === "duplicate") out(line);
      else err(line);
      sent += outcome.status === "accepted" || outcome.status === "duplicate" ? part.results : 0;
      bar?.increment(1, { results: sent });
    },
    info: out,
    warn: (message) => err(`warning: ${message}`),
    error: (message) => err(`error: ${message}`),
    finish() {
      bars?.stop();
      bars = undefined;
      bar = undefined;
    },
  };
}
