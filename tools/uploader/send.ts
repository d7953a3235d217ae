/**
 * Sends parts to POST /api/ingestion, with retries (p-retry).
 *
 * Retrying is safe because every upload is idempotent: the same key and the same body go out again, and a
 * part the server already stored comes back as a duplicate instead of being stored twice. Network errors,
 * timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (or after Retry-After when the
 * server gives one); any other 4xx means the request itself is wrong and is never retried. For v2 each
 * attempt is signed again with a fresh timestamp: the server accepts timestamps within ±300 s, and backoff
 * plus Retry-After could otherwise outlive a signature.
 *
 * p-retry runs the attempts and decides what is retryable (it gives up at once on a programming error such
 * as a TypeError that is not a network failure). Its own timer is set to zero: the wait happens in
 * `onFailedAttempt`, which p-retry awaits, through the injectable `sleep`, so Retry-After can be honoured
 * and tests never wait on the clock.
 */
import pRetry, { AbortError } from "p-retry";
import type { Part } from "./parts.ts";
import type { PartOutcome, Reporter, RetryInfo, ServerError, ServerSummary } from "./reporter.ts";
import { type SignatureScheme, signedHeaders } from "./sign.ts";

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

/** A 408, 429 or 5xx answer: thrown so that p-retry tries again. */
class RetryableResponse extends Error {
  readonly retryAfterMs: number | undefined;

  constructor(status: number, retryAfterMs: number | undefined) {
    super(`HTTP ${status}`);
    this.name = "RetryableResponse";
    this.retryAfterMs = retryAfterMs;
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

type Failure = Omit<PartOutcome, "index" | "key" | "results" | "attempts">;

/** Sends one part, retrying what can be retried. Never throws for HTTP or network failures. */
async function sendPart(part: Part, options: SendOptions, onRetry?: (info: RetryInfo) => void): Promise<PartOutcome> {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const base = { index: part.index, key: part.key, results: part.results };
  let attempts = 0;
  /** Why the latest attempt failed; what the outcome says once p-retry gives up. */
  let failure: Failure | undefined;

  const attempt = async (attemptNumber: number): Promise<PartOutcome> => {
    attempts = attemptNumber;
    failure = undefined;
    let headers: Record<string, string>;
    try {
      headers = signedHeaders({
        scheme: options.scheme,
        secret: options.secret,
        repoId: options.repoId,
        id: part.key,
        body: part.body,
        timestamp: Math.floor(now() / 1000),
      });
    } catch (error) {
      throw new AbortError(error as Error);
    }
    if (options.userAgent) headers["user-agent"] = options.userAgent;

    let response: Response;
    let text: string;
    try {
      response = await doFetch(options.endpoint, {
        method: "POST",
        headers,
        body: part.body,
        // A 301/302 would turn the POST into a GET; better to say where the service moved.
        redirect: "manual",
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const reason = networkReason(error, options.timeoutMs);
      failure = {
        status: "unavailable",
        error: { message: `could not reach ${displayUrl(options.endpoint)}: ${reason}` },
      };
      throw error;
    }
    const answered = { ...base, httpStatus: response.status, attempts: attemptNumber };
    if (response.ok) {
      let parsed: { ingestionId?: string; summary?: ServerSummary; isDuplicate?: boolean } = {};
      try {
        parsed = JSON.parse(text);
      } catch {
        // accepted all the same; there is just no summary to show
      }
      const status = parsed.isDuplicate ? "duplicate" : "accepted";
      return { ...answered, status, ingestionId: parsed.ingestionId, summary: parsed.summary };
    }
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get("location") ?? "somewhere else";
      const message = `the service redirects to ${location}; set ANCHORPIPE_URL (or --url) to that address`;
      return { ...answered, status: "rejected", error: { message } };
    }
    const error = readError(response.status, text);
    if (!isRetryableStatus(response.status)) return { ...answered, status: "rejected", error };
    failure = { status: "unavailable", httpStatus: response.status, error };
    throw new RetryableResponse(response.status, parseRetryAfter(response.headers.get("retry-after"), now()));
  };

  try {
    return await pRetry(attempt, {
      retries: options.retries,
      minTimeout: 0,
      maxTimeout: 0,
      randomize: false,
      onFailedAttempt: async (error) => {
        if (error.retriesLeft <= 0) return;
        const retryAfterMs = error instanceof RetryableResponse ? error.retryAfterMs : undefined;
        const delayMs =
          retryAfterMs !== undefined
            ? Math.min(retryAfterMs, options.maxRetryAfterMs ?? 60_000)
            : backoffDelay(error.attemptNumber - 1, options.retryDelayMs, options.maxDelayMs ?? 30_000, random);
        const reason = error instanceof RetryableResponse ? error.message : networkReason(error, options.timeoutMs);
        onRetry?.({ attempt: error.attemptNumber, delayMs, reason });
        await sleep(delayMs);
      },
    });
  } catch (error) {
    // Not a failure of the request (signing, a bug): nothing to report as an outcome.
    if (!failure) throw error;
    return { ...base, ...failure, attempts };
  }
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
