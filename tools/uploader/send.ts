/**
 * Sends parts to POST /api/ingestion, with retries.
 *
 * Retrying is safe because every upload is idempotent: the same key and the same body go out again, and a
 * part the server already stored comes back as a duplicate instead of being stored twice. Network errors,
 * timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (or after Retry-After when the
 * server gives one); any other 4xx means the request itself is wrong and is never retried. For v2 each
 * attempt is signed again with a fresh timestamp: the server accepts timestamps within ±300 s, and backoff
 * plus Retry-After could otherwise outlive a signature.
 */
import { MultiBar, Presets } from "cli-progress";
import { type SignatureScheme, signedHeaders } from "./sign.ts";
import type { Part } from "./split.ts";

export interface SendOptions {
  /** The full endpoint URL (…/api/ingestion). */
  endpoint: string;
  repoId: string;
  secret: string;
  scheme: SignatureScheme;
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff delay; doubles per retry, capped at maxDelayMs. */
  retryDelayMs: number;
  maxDelayMs?: number;
  /** Retry-After is honoured up to this long; a CI job should not sleep for an hour. */
  maxRetryAfterMs?: number;
  userAgent?: string;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

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
  attempt: number;
  delayMs: number;
  reason: string;
}

const RETRYABLE_4XX = new Set([408, 429]);

function isRetryableStatus(status: number): boolean {
  return status >= 500 || RETRYABLE_4XX.has(status);
}

/** Retry-After as delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Exponential backoff with "equal jitter": half the delay fixed, half random, so retries spread out. */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** retry);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

function networkReason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") return `no response within ${timeoutMs / 1000} s`;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return cause.code;
    if (cause?.message) return cause.message;
    return error.message;
  }
  return String(error);
}

function readError(status: number, text: string): ServerError {
  try {
    const parsed = JSON.parse(text) as { error?: ServerError };
    if (parsed?.error && typeof parsed.error.message === "string") return parsed.error;
  } catch {
    // not our envelope: a proxy's page, say
  }
  const snippet = text.replace(/\s+/g, " ").trim().slice(0, 200);
  return { message: snippet || `HTTP ${status}` };
}

/** The URL for messages: without any user:password someone may have put in it. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "(invalid URL)";
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sends one part, retrying what can be retried. Never throws for HTTP or network failures. */
async function sendPart(part: Part, options: SendOptions, onRetry?: (info: RetryInfo) => void): Promise<PartOutcome> {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const base = { index: part.index, key: part.key, results: part.results };
  let last: Omit<PartOutcome, "index" | "key" | "results" | "attempts"> = {
    status: "unavailable",
    error: { message: "not sent" },
  };

  for (let attempt = 1; attempt <= options.retries + 1; attempt++) {
    const headers = signedHeaders({
      scheme: options.scheme,
      secret: options.secret,
      repoId: options.repoId,
      id: part.key,
      body: part.body,
      timestamp: Math.floor(now() / 1000),
    });
    if (options.userAgent) headers["user-agent"] = options.userAgent;

    let retryAfterMs: number | undefined;
    let reason: string;
    try {
      const response = await doFetch(options.endpoint, {
        method: "POST",
        headers,
        body: part.body,
        // A 301/302 would turn the POST into a GET; better to say where the service moved.
        redirect: "manual",
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      const text = await response.text();
      if (response.ok) {
        let parsed: { ingestionId?: string; summary?: ServerSummary; isDuplicate?: boolean } = {};
        try {
          parsed = JSON.parse(text);
        } catch {
          // accepted all the same; there is just no summary to show
        }
        return {
          ...base,
          status: parsed.isDuplicate ? "duplicate" : "accepted",
          httpStatus: response.status,
          attempts: attempt,
          ingestionId: parsed.ingestionId,
          summary: parsed.summary,
        };
      }
      if (response.status >= 300 && response.status < 400) {
        const location = response.headers.get("location") ?? "somewhere else";
        return {
          ...base,
          status: "rejected",
          httpStatus: response.status,
          attempts: attempt,
          error: { message: `the service redirects to ${location}; set ANCHORPIPE_URL (or --url) to that address` },
        };
      }
      const error = readError(response.status, text);
      if (!isRetryableStatus(response.status)) {
        return { ...base, status: "rejected", httpStatus: response.status, attempts: attempt, error };
      }
      last = { status: "unavailable", httpStatus: response.status, error };
      retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), now());
      reason = `HTTP ${response.status}`;
    } catch (error) {
      reason = networkReason(error, options.timeoutMs);
      last = {
        status: "unavailable",
        error: { message: `could not reach ${displayUrl(options.endpoint)}: ${reason}` },
      };
    }

    if (attempt > options.retries) return { ...base, ...last, attempts: attempt };
    const delayMs =
      retryAfterMs !== undefined
        ? Math.min(retryAfterMs, options.maxRetryAfterMs ?? 60_000)
        : backoffDelay(attempt - 1, options.retryDelayMs, options.maxDelayMs ?? 30_000, random);
    onRetry?.({ attempt, delayMs, reason });
    await sleep(delayMs);
  }
  return { ...base, ...last, attempts: options.retries + 1 };
}

/** Statuses after which the remaining parts would fail the same way, so they are not tried. */
const STOP_AFTER = new Set([401, 403]);

/** Sends parts one after another. Stops early once the service is unreachable or the credentials are refused. */
export async function sendAll(parts: Part[], options: SendOptions, reporter: Reporter): Promise<PartOutcome[]> {
  const outcomes: PartOutcome[] = [];
  let stopReason: string | undefined;
  for (const part of parts) {
    if (stopReason) {
      const skipped: PartOutcome = {
        index: part.index,
        key: part.key,
        results: part.results,
        status: "skipped",
        attempts: 0,
        error: { message: stopReason },
      };
      outcomes.push(skipped);
      reporter.done(part, skipped);
      continue;
    }
    const outcome = await sendPart(part, options, (info) => reporter.retry(part, info));
    outcomes.push(outcome);
    reporter.done(part, outcome);
    if (outcome.status === "unavailable") stopReason = "not sent: the service is unavailable";
    else if (outcome.status === "rejected" && STOP_AFTER.has(outcome.httpStatus ?? 0)) {
      stopReason = `not sent: the service refused the credentials (HTTP ${outcome.httpStatus})`;
    }
  }
  return outcomes;
}

// ---------------------------------------------------------------------------------------------------------
// Output. Information goes to stdout, warnings and errors to stderr; nothing here ever sees the secret.

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

function describeOutcome(part: Part, outcome: PartOutcome): string {
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
