/**
 * The uploader as a function: reads the inputs, works out commit/branch/PR/run from flags and CI variables,
 * splits, checks every body against the contract, signs and sends. The CLI (cli.ts) is a thin wrapper;
 * tests and other tools call `upload()`.
 *
 *   inputs.ts (files, globs) → groups.ts (top-level fields) → parts.ts (split, keys, validate.ts)
 *     → send.ts (sign.ts, retries) → reporter.ts (output)
 *
 * Exit codes (also in README.md):
 *   0  every part accepted (duplicates included), or the service could not be reached / kept answering
 *      5xx or 429 after all retries and --strict was not given: CI should not fail because we are down.
 *   1  something the caller must fix: usage, configuration (missing secret, repo id, commit, run id),
 *      unreadable inputs, a payload the contract refuses (nothing is sent then), or the service rejected a
 *      part with a 4xx (400, 401, 403, 409, 413, 415, 422, …).
 *   2  with --strict only: the service could not be reached or kept failing.
 */
import {
  FRAMEWORKS,
  type Framework,
  HEADERS,
  INGESTION_PATH,
  isUuid,
  LIMITS,
  SIGNATURE_SCHEMES,
} from "../../src/contract/ingestion.ts";
import type { CiProvider, Env } from "./ci-env.ts";
import { UploadError } from "./errors.ts";
import { buildGroups, type GroupContext } from "./groups.ts";
import { expandInputs, loadInput } from "./inputs.ts";
import { type Part, planParts } from "./parts.ts";
import { createReporter, type PartOutcome, type Reporter } from "./reporter.ts";
import { blankToUndefined, CI_NAMES, resolveRunContext } from "./run-context.ts";
import { displayUrl, sendAll } from "./send.ts";
import { decodeWebhookSecret, SecretFormatError, type SignatureScheme } from "./sign.ts";

export { UploadError };

export const DEFAULT_URL = "http://localhost:8787";
export const DEFAULTS = {
  maxResults: LIMITS.results,
  maxBytes: LIMITS.defaultMaxBodyBytes,
  timeoutMs: 30_000,
  retries: 4,
  retryDelayMs: 1_000,
} as const;

export interface UploadOptions {
  /** Files and globs (relative to cwd). */
  files: string[];
  cwd?: string;
  /** Service base URL; "/api/ingestion" is appended unless already there. Default: ANCHORPIPE_URL, then localhost. */
  url?: string;
  /** Default: ANCHORPIPE_REPO_ID. */
  repoId?: string;
  /** Default: ANCHORPIPE_SECRET. Never printed. */
  secret?: string;
  commit?: string;
  branch?: string;
  pullRequest?: string;
  runId?: string;
  framework?: Framework;
  signature?: SignatureScheme;
  strict?: boolean;
  maxResults?: number;
  maxBytes?: number;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  dryRun?: boolean;
  quiet?: boolean;
  /** Where CI variables and the ANCHORPIPE_* defaults are read from. Default: process.env. */
  env?: Env;
  reporter?: Reporter;
  fetch?: typeof fetch;
  /** Waits between retries (tests pass one that returns at once). */
  sleep?: (ms: number) => Promise<void>;
  /** The clock for signatures and Retry-After dates. */
  now?: () => number;
  userAgent?: string;
}

export type UploadStatus = "ok" | "dry-run" | "nothing-to-upload" | "unavailable" | "rejected";

export interface PlannedPart {
  index: number;
  key: string;
  kind: Part["kind"];
  results: number;
  bytes: number;
  sources: string[];
}

export interface UploadOutcome {
  exitCode: 0 | 1 | 2;
  status: UploadStatus;
  endpoint: string;
  ci: CiProvider | null;
  planned: PlannedPart[];
  /** One per planned part, in order; empty for a dry run. */
  parts: PartOutcome[];
  warnings: string[];
}

/** The ingestion endpoint for a base URL. */
function endpointFor(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UploadError(`--url / ANCHORPIPE_URL "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UploadError(`--url / ANCHORPIPE_URL must be http(s), not ${parsed.protocol}`);
  }
  if (!parsed.pathname.endsWith(INGESTION_PATH)) {
    parsed.pathname = `${parsed.pathname.replace(/\/+$/, "")}${INGESTION_PATH}`;
  }
  return parsed.toString();
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

function wholeNumber(value: number, name: string, min: number, max?: number): number {
  if (!Number.isInteger(value) || value < min || (max !== undefined && value > max)) {
    throw new UploadError(`${name} must be a whole number ${max === undefined ? `≥ ${min}` : `from ${min} to ${max}`}`);
  }
  return value;
}

function checkSecret(secret: string, scheme: SignatureScheme): void {
  if (!secret) throw new UploadError("no secret: set ANCHORPIPE_SECRET (it is never taken from a flag)");
  if (scheme !== "v2") return;
  try {
    decodeWebhookSecret(secret);
  } catch (error) {
    if (error instanceof SecretFormatError) throw new UploadError(error.message);
    throw error;
  }
}

export async function upload(options: UploadOptions): Promise<UploadOutcome> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const reporter = options.reporter ?? createReporter({ quiet: options.quiet });
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    reporter.warn(message);
  };

  const url = blankToUndefined(options.url) ?? blankToUndefined(env.ANCHORPIPE_URL) ?? DEFAULT_URL;
  const endpoint = endpointFor(url);
  const shown = displayUrl(endpoint);
  const repoId = (blankToUndefined(options.repoId) ?? blankToUndefined(env.ANCHORPIPE_REPO_ID))?.toLowerCase();
  if (!repoId) throw new UploadError("no repository id: set ANCHORPIPE_REPO_ID (or pass --repo-id)");
  if (!isUuid(repoId)) throw new UploadError(`repository id "${repoId}" is not a uuid`);
  const scheme = options.signature ?? "v2";
  if (!SIGNATURE_SCHEMES.includes(scheme))
    throw new UploadError(`--signature must be ${SIGNATURE_SCHEMES.join(" or ")}`);
  const secret = options.secret ?? env.ANCHORPIPE_SECRET ?? "";
  if (!options.dryRun) checkSecret(secret, scheme);
  const limits = {
    maxResults: wholeNumber(options.maxResults ?? DEFAULTS.maxResults, "--max-results", 1, LIMITS.results),
    maxBytes: wholeNumber(options.maxBytes ?? DEFAULTS.maxBytes, "--max-bytes", 1024),
  };
  const timeoutMs = wholeNumber(options.timeoutMs ?? DEFAULTS.timeoutMs, "--timeout", 1);
  const retries = wholeNumber(options.retries ?? DEFAULTS.retries, "--retries", 0);
  const retryDelayMs = wholeNumber(options.retryDelayMs ?? DEFAULTS.retryDelayMs, "--retry-delay", 0);
  if (options.framework !== undefined && !FRAMEWORKS.includes(options.framework)) {
    throw new UploadError(`--framework must be one of ${FRAMEWORKS.join(", ")}`);
  }
  if (options.files.length === 0) throw new UploadError("no input files: give JUnit XML or JSON files, or globs");

  const run = resolveRunContext(options, env);
  if (run.provider && url === DEFAULT_URL) {
    warn(`ANCHORPIPE_URL is not set; sending to ${DEFAULT_URL}`);
  }

  const files = await expandInputs(options.files, cwd);
  const inputs = await Promise.all(files.map((file) => loadInput(file, cwd)));
  const context: GroupContext = { repoId, run, framework: options.framework, warnings: [] };
  const groups = buildGroups(inputs, context);
  for (const message of context.warnings) warn(message);

  // Every body is split, keyed and checked against the contract before the first one is sent.
  const plan = planParts(groups, limits);
  for (const message of plan.warnings) warn(message);
  const { parts } = plan;
  const planned: PlannedPart[] = parts.map((p) => ({
    index: p.index,
    key: p.key,
    kind: p.kind,
    results: p.results,
    bytes: p.body.length,
    sources: p.sources,
  }));
  const result = (status: UploadStatus, exitCode: UploadOutcome["exitCode"], sent: PartOutcome[] = []) => ({
    exitCode,
    status,
    endpoint: shown,
    ci: run.provider,
    planned,
    parts: sent,
    warnings,
  });

  const total = parts.reduce((sum, p) => sum + p.results, 0);
  if (parts.length === 0) {
    warn("nothing to upload");
    return result("nothing-to-upload", 0);
  }

  const first = parts[0]!.fields;
  const where = [
    `commit ${first.commit_sha.slice(0, 12)}`,
    first.branch ? `branch ${first.branch}` : "",
    first.pull_request ? `pull request ${first.pull_request}` : "",
    `run ${first.run_id}`,
    run.provider ? `via ${CI_NAMES[run.provider]}` : "",
  ]
    .filter(Boolean)
    .join(", ");
  const headline = `${total} results in ${parts.length} part${parts.length === 1 ? "" : "s"} → POST ${shown} (signature ${scheme}; ${where})`;

  if (options.dryRun) {
    reporter.info(`dry run: would upload ${headline}`);
    const signatureHeaders =
      scheme === "v2"
        ? `${HEADERS.webhookId}, ${HEADERS.webhookTimestamp}, ${HEADERS.webhookSignature}`
        : `${HEADERS.v1Signature} (and idempotency_key in the body)`;
    reporter.info(
      `  headers: ${HEADERS.authorization}: Bearer ${repoId}, content-type: application/json, ${signatureHeaders}`,
    );
    for (const part of parts) {
      reporter.info(
        `part ${part.index + 1}/${part.total}: key ${part.key}, ${part.kind}, framework ${part.fields.framework}, ` +
          `${part.results} results, ${formatBytes(part.body.length)}, from ${part.sources.join(", ")}`,
      );
    }
    return result("dry-run", 0);
  }

  reporter.info(`uploading ${headline}`);
  reporter.start(parts);
  let outcomes: PartOutcome[];
  try {
    outcomes = await sendAll(
      parts,
      {
        endpoint,
        repoId,
        secret,
        scheme,
        timeoutMs,
        retries,
        retryDelayMs,
        userAgent: options.userAgent ?? `anchorpipe-uploader (node ${process.versions.node})`,
        fetch: options.fetch,
        sleep: options.sleep,
        now: options.now,
      },
      reporter,
    );
  } finally {
    reporter.finish();
  }

  const rejected = outcomes.filter((o) => o.status === "rejected").length;
  const unavailable = outcomes.filter((o) => o.status === "unavailable" || o.status === "skipped").length;
  const duplicates = outcomes.filter((o) => o.status === "duplicate").length;
  const accepted = outcomes.length - rejected - unavailable;
  reporter.info(
    `${accepted}/${parts.length} part${parts.length === 1 ? "" : "s"} uploaded` +
      (duplicates ? ` (${duplicates} already received earlier)` : ""),
  );
  if (rejected > 0) return result("rejected", 1, outcomes);
  if (unavailable > 0) {
    if (options.strict) {
      reporter.error(`the service at ${shown} was unavailable; failing because of --strict`);
      return result("unavailable", 2, outcomes);
    }
    warn(
      `the service at ${shown} was unavailable: ${unavailable} part(s) not uploaded. ` +
        "Not failing the build (pass --strict to fail it).",
    );
    return result("unavailable", 0, outcomes);
  }
  return result("ok", 0, outcomes);
}
