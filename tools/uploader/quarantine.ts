/**
 * `anchorpipe quarantine`: fetches the repository's quarantine list, GET /api/repos/:repoId/quarantine,
 * signed like an upload (Standard Webhooks v2 over an empty body, `Authorization: Bearer <repo id>`), and
 * renders it for a test runner.
 *
 * With a cache file the request carries `If-None-Match` with the stored ETag; a 304 means the stored body
 * is still the list. Network errors, timeouts, 408, 429 and 5xx are retried like uploads (p-retry, backoff
 * with jitter, Retry-After honoured up to 60 s); a read is idempotent, so each attempt is simply signed
 * afresh with a new webhook-id.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import pRetry, { AbortError } from "p-retry";
import { z } from "zod";
import { INGESTION_PATH, isUuid, WEBHOOK_SECRET_PREFIX } from "../../src/contract/ingestion.ts";
import { UploadError } from "./errors.ts";
import { blankToUndefined } from "./run-context.ts";
import { backoffDelay, displayUrl, parseRetryAfter } from "./send.ts";
import { decodeWebhookSecret, SecretFormatError, signedReadHeaders } from "./sign.ts";

/** One quarantined test as the service lists it (the fields a runner or a person needs; others are kept). */
const quarantinedTestSchema = z.looseObject({
  testId: z.string().nullish(),
  path: z.string(),
  name: z.string(),
  suite: z.string().nullish(),
  framework: z.string().nullish(),
  class: z.string().nullish(),
  score: z.number().nullish(),
  reason: z.string().nullish(),
  owners: z.array(z.unknown()).nullish(),
});

export const quarantineListSchema = z.looseObject({
  repoId: z.string().nullish(),
  tests: z.array(quarantinedTestSchema),
});

export type QuarantinedTest = z.output<typeof quarantinedTestSchema>;
export type QuarantineList = z.output<typeof quarantineListSchema>;

export const QUARANTINE_FORMATS = ["json", "list", "names"] as const;
export type QuarantineFormat = (typeof QUARANTINE_FORMATS)[number];

/**
 * The service could not be reached, kept failing (5xx, 429) or refused the request (4xx), or answered
 * something that is not a quarantine list. `unavailable` is the CLI's exit 2, anything else exit 1.
 */
export class QuarantineFetchError extends Error {
  readonly unavailable: boolean;
  readonly httpStatus?: number;

  constructor(message: string, options: { unavailable: boolean; httpStatus?: number }) {
    super(message);
    this.name = "QuarantineFetchError";
    this.unavailable = options.unavailable;
    this.httpStatus = options.httpStatus;
  }
}

export interface QuarantineOptions {
  /** Service base URL (a URL ending in /api/ingestion is taken as its base). Default: ANCHORPIPE_URL. */
  url?: string;
  /** Default: ANCHORPIPE_REPO_ID. */
  repoId?: string;
  /** Default: ANCHORPIPE_SECRET (v2, whsec_…). Never printed. */
  secret?: string;
  /** Where the last ETag and body are kept between runs. */
  cacheFile?: string;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  env?: Record<string, string | undefined>;
  userAgent?: string;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

export interface FetchedQuarantine {
  list: QuarantineList;
  /** The service's JSON, as it sent it (from the cache after a 304). */
  body: string;
  etag?: string;
  /** True when the service answered 304 and the cached body was used. */
  fromCache: boolean;
  /** The service kept only its highest-scored tests (`Anchorpipe-Quarantine-Truncated: true`). */
  truncated: boolean;
  /** Problems that did not stop the fetch (a cache file that could not be written). */
  warnings: string[];
  endpoint: string;
}

const DEFAULT_URL = "http://localhost:8787";
/** Set by the service when the list was cut to its highest scores. */
const TRUNCATED_HEADER = "anchorpipe-quarantine-truncated";

/** GET /api/repos/:repoId/quarantine under the base URL. */
export function quarantineEndpoint(url: string, repoId: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UploadError(`--url / ANCHORPIPE_URL "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UploadError(`--url / ANCHORPIPE_URL must be http(s), not ${parsed.protocol}`);
  }
  // ANCHORPIPE_URL is often set to the ingestion URL itself; the API lives next to it.
  const base = parsed.pathname.replace(/\/+$/, "").replace(new RegExp(`${INGESTION_PATH}$`), "");
  parsed.pathname = `${base}/api/repos/${encodeURIComponent(repoId)}/quarantine`;
  parsed.search = "";
  parsed.hash = "";
  return parsed.toString();
}

interface CacheEntry {
  endpoint: string;
  etag: string;
  body: string;
}

async function readCache(file: string, endpoint: string): Promise<CacheEntry | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined; // no cache yet
  }
  try {
    const entry = JSON.parse(text) as Partial<CacheEntry>;
    if (entry.endpoint !== endpoint || typeof entry.etag !== "string" || typeof entry.body !== "string") return;
    quarantineListSchema.parse(JSON.parse(entry.body));
    return entry as CacheEntry;
  } catch {
    return undefined; // unreadable or for another repository: fetched again and overwritten
  }
}

/** Stores the answer; a cache that cannot be written costs a download next time, so it is only a warning. */
async function writeCache(file: string, entry: CacheEntry): Promise<string | undefined> {
  // Written aside and renamed, so a parallel job never reads half a file.
  const partial = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await writeFile(partial, `${JSON.stringify(entry)}\n`);
    await rename(partial, file);
    return undefined;
  } catch (error) {
    return `could not write the cache ${file}: ${(error as Error).message}`;
  }
}

/** A webhook-id for one read: nothing to deduplicate, so just unique. */
function freshId(): string {
  return `msg_${randomBytes(16).toString("hex")}`;
}

function networkReason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") return `no response within ${timeoutMs / 1000} s`;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? error.message;
  }
  return String(error);
}

function errorMessage(status: number, text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string; requestId?: string } };
    if (parsed?.error?.message) {
      const { code, message, requestId } = parsed.error;
      return `${code ? `${code}: ` : ""}${message}${requestId ? ` (request ${requestId})` : ""}`;
    }
  } catch {
    // not our envelope
  }
  return text.replace(/\s+/g, " ").trim().slice(0, 200) || `HTTP ${status}`;
}

class Retryable extends Error {
  readonly retryAfterMs: number | undefined;

  constructor(message: string, retryAfterMs?: number) {
    super(message);
    this.name = "Retryable";
    this.retryAfterMs = retryAfterMs;
  }
}

/** Fetches the list, with the cache and retries. Throws UploadError (configuration) or QuarantineFetchError. */
export async function fetchQuarantine(options: QuarantineOptions): Promise<FetchedQuarantine> {
  const env = options.env ?? process.env;
  const url = blankToUndefined(options.url) ?? blankToUndefined(env.ANCHORPIPE_URL) ?? DEFAULT_URL;
  const repoId = (blankToUndefined(options.repoId) ?? blankToUndefined(env.ANCHORPIPE_REPO_ID))?.toLowerCase();
  if (!repoId) throw new UploadError("no repository id: set ANCHORPIPE_REPO_ID (or pass --repo-id)");
  if (!isUuid(repoId)) throw new UploadError(`repository id "${repoId}" is not a uuid`);
  const secret = options.secret ?? env.ANCHORPIPE_SECRET ?? "";
  if (!secret) throw new UploadError("no secret: set ANCHORPIPE_SECRET (it is never taken from a flag)");
  // Reads are signed with v2 only, whatever scheme the uploads use.
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    throw new UploadError(
      `ANCHORPIPE_SECRET is not a v2 secret (those start with ${WEBHOOK_SECRET_PREFIX}); the quarantine list is read with a v2 secret only`,
    );
  }
  try {
    decodeWebhookSecret(secret);
  } catch (error) {
    if (error instanceof SecretFormatError) throw new UploadError(error.message);
    throw error;
  }
  const endpoint = quarantineEndpoint(url, repoId);
  const shown = displayUrl(endpoint);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const cached = options.cacheFile ? await readCache(options.cacheFile, endpoint) : undefined;

  const attempt = async (): Promise<FetchedQuarantine> => {
    const headers: Record<string, string> = {
      ...signedReadHeaders({ secret, repoId, id: freshId(), timestamp: Math.floor(now() / 1000) }),
      accept: "application/json",
    };
    if (options.userAgent) headers["user-agent"] = options.userAgent;
    if (cached) headers["if-none-match"] = cached.etag;
    let response: Response;
    let text: string;
    try {
      response = await doFetch(endpoint, { method: "GET", headers, signal: AbortSignal.timeout(timeoutMs) });
      text = await response.text();
    } catch (error) {
      throw new Retryable(`could not reach ${shown}: ${networkReason(error, timeoutMs)}`);
    }
    const truncated = response.headers.get(TRUNCATED_HEADER)?.trim().toLowerCase() === "true";
    if (response.status === 304 && cached) {
      return {
        list: quarantineListSchema.parse(JSON.parse(cached.body)),
        body: cached.body,
        etag: cached.etag,
        fromCache: true,
        truncated,
        warnings: [],
        endpoint: shown,
      };
    }
    if (response.status >= 500 || response.status === 408 || response.status === 429) {
      throw new Retryable(
        `${shown} answered HTTP ${response.status}: ${errorMessage(response.status, text)}`,
        parseRetryAfter(response.headers.get("retry-after"), now()),
      );
    }
    if (response.status !== 200) {
      const hint =
        response.status === 404 ? " (is the repository id right, and does this service have the quarantine list?)" : "";
      throw new AbortError(
        new QuarantineFetchError(
          `${shown} answered HTTP ${response.status}: ${errorMessage(response.status, text)}${hint}`,
          { unavailable: false, httpStatus: response.status },
        ),
      );
    }
    let list: QuarantineList;
    try {
      list = quarantineListSchema.parse(JSON.parse(text));
    } catch {
      throw new AbortError(
        new QuarantineFetchError(`${shown} answered 200 with something that is not a quarantine list`, {
          unavailable: false,
          httpStatus: 200,
        }),
      );
    }
    const etag = response.headers.get("etag") ?? undefined;
    const warnings: string[] = [];
    if (options.cacheFile && etag) {
      const problem = await writeCache(options.cacheFile, { endpoint, etag, body: text });
      if (problem) warnings.push(problem);
    }
    return { list, body: text, etag, fromCache: false, truncated, warnings, endpoint: shown };
  };

  let lastError: Retryable | undefined;
  try {
    return await pRetry(attempt, {
      retries: options.retries ?? 4,
      minTimeout: 0,
      maxTimeout: 0,
      randomize: false,
      onFailedAttempt: async (error) => {
        const retryable = error instanceof Retryable ? error : undefined;
        if (retryable) lastError = retryable;
        if (error.retriesLeft <= 0 || !retryable) return;
        const delayMs =
          retryable.retryAfterMs !== undefined
            ? Math.min(retryable.retryAfterMs, 60_000)
            : backoffDelay(
                error.attemptNumber - 1,
                options.retryDelayMs ?? 1_000,
                30_000,
                options.random ?? Math.random,
              );
        await sleep(delayMs);
      },
    });
  } catch (error) {
    if (error instanceof QuarantineFetchError) throw error;
    if (error instanceof Retryable || lastError) {
      throw new QuarantineFetchError((error instanceof Retryable ? error : lastError!).message, { unavailable: true });
    }
    throw error;
  }
}

/** Characters that would break a line-per-test file, escaped: backslash, newline, carriage return. */
function lineSafe(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
}

/** The test id of `--format list`: `<path>::<name>`, the identity the service keys tests by (framework aside). */
export function testId(test: Pick<QuarantinedTest, "path" | "name">): string {
  return `${lineSafe(test.path)}::${lineSafe(test.name)}`;
}

/**
 * The list rendered for a runner: `json` is the service's JSON as sent; `list` one `<path>::<name>` per
 * line, sorted and unique; `names` one test name per line, sorted and unique (for runners that select by
 * name, e.g. `go test -skip`, `jest -t`, `pytest -k`). Every non-empty output ends with a newline.
 */
export function renderQuarantine(fetched: Pick<FetchedQuarantine, "list" | "body">, format: QuarantineFormat): string {
  if (format === "json") return fetched.body.endsWith("\n") ? fetched.body : `${fetched.body}\n`;
  const lines =
    format === "list" ? fetched.list.tests.map(testId) : fetched.list.tests.map((test) => lineSafe(test.name));
  const unique = [...new Set(lines)].sort();
  return unique.length === 0 ? "" : `${unique.join("\n")}\n`;
}
