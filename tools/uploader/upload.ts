/**
 * The uploader as a function: reads the inputs, works out commit/branch/PR/run from flags and CI variables,
 * splits, signs and sends. The CLI (cli.ts) is a thin wrapper; tests and other tools call `upload()`.
 *
 * Exit codes (also in README.md):
 *   0  every part accepted (duplicates included), or the service could not be reached / kept answering
 *      5xx or 429 after all retries and --strict was not given: CI should not fail because we are down.
 *   1  something the caller must fix: usage, configuration (missing secret, repo id, commit, run id),
 *      unreadable inputs, or the service rejected a part with a 4xx (400, 401, 403, 409, 413, 415, 422, …).
 *   2  with --strict only: the service could not be reached or kept failing.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { glob } from "tinyglobby";
import { CI_VARIABLES, type CiInfo, type CiProvider, detectCi, type Env } from "./ci-env.ts";
import { createReporter, displayUrl, type PartOutcome, type Reporter, sendAll } from "./send.ts";
import { decodeWebhookSecret, SecretFormatError, type SignatureScheme } from "./sign.ts";
import {
  countTestcases,
  FRAMEWORKS,
  type Framework,
  type Part,
  type PayloadFields,
  planParts,
  type ReportItem,
  SplitError,
  type TestItem,
  type UploadGroup,
} from "./split.ts";

export const DEFAULT_URL = "http://localhost:8787";
export const DEFAULTS = {
  maxResults: 10_000,
  maxBytes: 5 * 1024 * 1024,
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

/** A problem the caller must fix before anything is sent; the CLI prints the message and exits 1. */
export class UploadError extends Error {
  readonly exitCode = 1;

  constructor(message: string) {
    super(message);
    this.name = "UploadError";
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CI_NAMES: Record<CiProvider, string> = {
  "github-actions": "GitHub Actions",
  gitlab: "GitLab CI",
  buildkite: "Buildkite",
  circleci: "CircleCI",
  jenkins: "Jenkins",
};

function blankToUndefined(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
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
  if (!parsed.pathname.endsWith("/api/ingestion")) {
    parsed.pathname = `${parsed.pathname.replace(/\/+$/, "")}/api/ingestion`;
  }
  return parsed.toString();
}

/** Commit, branch, PR and run id: flags win over CI variables. Pure; validation happens per group. */
export function resolveRunContext(
  flags: Pick<UploadOptions, "commit" | "branch" | "pullRequest" | "runId">,
  env: Env,
): CiInfo {
  const ci = detectCi(env);
  return {
    provider: ci.provider,
    commit: blankToUndefined(flags.commit) ?? ci.commit,
    branch: blankToUndefined(flags.branch) ?? ci.branch,
    pullRequest: blankToUndefined(flags.pullRequest) ?? ci.pullRequest,
    runId: blankToUndefined(flags.runId) ?? ci.runId,
  };
}

function missing(what: "commit" | "runId", flag: string, provider: CiProvider | null): string {
  const noun = what === "commit" ? "commit SHA" : "run id";
  if (provider) {
    return `no ${noun}: ${CI_NAMES[provider]} detected but ${CI_VARIABLES[provider][what]} is not set; pass ${flag}`;
  }
  return `no ${noun}: pass ${flag}, or run in a CI the uploader recognises (GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins)`;
}

/** Checks and normalises the fields of one body. */
function finishFields(fields: Partial<PayloadFields>, provider: CiProvider | null, source: string): PayloadFields {
  const where = source ? ` (for ${source})` : "";
  const commit = fields.commit_sha?.trim();
  if (!commit) throw new UploadError(missing("commit", "--commit", provider) + where);
  if (!/^[0-9a-f]{40}$/i.test(commit)) {
    throw new UploadError(`commit "${commit}" is not a full 40-character hex SHA${where}; pass --commit`);
  }
  const runId = fields.run_id;
  if (!runId) throw new UploadError(missing("runId", "--run-id", provider) + where);
  if (runId.length > 255) throw new UploadError(`run id is longer than 255 characters${where}`);
  for (const [name, value] of [
    ["branch", fields.branch],
    ["pull request", fields.pull_request],
  ] as const) {
    if (value !== undefined && value.length > 255)
      throw new UploadError(`${name} is longer than 255 characters${where}`);
  }
  return { ...(fields as PayloadFields), commit_sha: commit.toLowerCase(), run_id: runId };
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

type LoadedInput =
  | { kind: "junit"; source: string; content: string }
  | { kind: "tests"; source: string; tests: unknown[] }
  | { kind: "payload"; source: string; payload: Record<string, unknown> };

/** Expands files and globs in argument order; glob matches sorted, so the same tree gives the same order. */
async function expandInputs(patterns: string[], cwd: string): Promise<string[]> {
  const files: string[] = [];
  const seen = new Set<string>();
  for (const pattern of patterns) {
    const literal = path.resolve(cwd, pattern);
    const info = await stat(literal).catch(() => undefined);
    let matches: string[];
    if (info?.isFile()) {
      matches = [literal];
    } else if (info?.isDirectory()) {
      throw new UploadError(`"${pattern}" is a directory; give files or a glob such as "${pattern}/**/*.xml"`);
    } else {
      matches = (
        await glob(pattern, { cwd, absolute: true, onlyFiles: true, ignore: ["**/node_modules/**", "**/.git/**"] })
      ).sort();
      if (matches.length === 0) throw new UploadError(`no files match "${pattern}"`);
    }
    for (const file of matches) {
      const resolved = path.resolve(file);
      if (!seen.has(resolved)) {
        seen.add(resolved);
        files.push(resolved);
      }
    }
  }
  return files;
}

const PAYLOAD_FIELDS = new Set([
  "repo_id",
  "commit_sha",
  "run_id",
  "framework",
  "branch",
  "pull_request",
  "environment",
  "metadata",
  "idempotency_key",
  "tests",
  "reports",
]);

async function loadInput(file: string, cwd: string): Promise<LoadedInput> {
  const relative = path.relative(cwd, file);
  const source = relative && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : file;
  let text: string;
  try {
    text = (await readFile(file, "utf8")).replace(/^\uFEFF/, "");
  } catch (error) {
    throw new UploadError(`cannot read ${source}: ${(error as Error).message}`);
  }
  const ext = path.extname(file).toLowerCase();
  const head = text.trimStart()[0];
  const isXml = ext === ".xml" || (ext !== ".json" && head === "<");
  const isJson = ext === ".json" || (ext !== ".xml" && (head === "{" || head === "["));
  if (isXml) return { kind: "junit", source, content: text };
  if (!isJson) throw new UploadError(`${source}: not JUnit XML (.xml) or JSON (.json)`);

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UploadError(`${source}: invalid JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(parsed)) return { kind: "tests", source, tests: parsed };
  if (parsed && typeof parsed === "object" && ("tests" in parsed || "reports" in parsed)) {
    const payload = parsed as Record<string, unknown>;
    const unknown = Object.keys(payload).filter((k) => !PAYLOAD_FIELDS.has(k));
    if (unknown.length > 0) {
      throw new UploadError(`${source}: unknown top-level field(s) ${unknown.join(", ")} (the service rejects them)`);
    }
    if ("tests" in payload && "reports" in payload) {
      throw new UploadError(`${source}: has both "tests" and "reports"; a payload carries exactly one`);
    }
    return { kind: "payload", source, payload };
  }
  throw new UploadError(`${source}: JSON must be an array of test results or a payload object with "tests"`);
}

function optionalString(payload: Record<string, unknown>, field: string, source: string): string | undefined {
  const value = payload[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new UploadError(`${source}: "${field}" must be a string`);
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface GroupContext {
  repoId: string;
  run: CiInfo;
  framework?: Framework;
  warnings: string[];
}

/** Fields for a group: the payload file's own fields, under CI-derived values, under flags. */
function fieldsFor(context: GroupContext, defaultFramework: Framework, file?: LoadedInput & { kind: "payload" }) {
  const { run } = context;
  const base: Partial<PayloadFields> = {
    repo_id: context.repoId,
    framework: context.framework ?? defaultFramework,
    commit_sha: run.commit,
    run_id: run.runId,
    branch: run.branch,
    pull_request: run.pullRequest,
  };
  if (!file) return finishFields(base, run.provider, "");

  const { payload, source } = file;
  const fileRepo = optionalString(payload, "repo_id", source);
  if (fileRepo && fileRepo.toLowerCase() !== context.repoId.toLowerCase()) {
    context.warnings.push(`${source} names repo_id ${fileRepo}; sending as ${context.repoId} (--repo-id wins)`);
  }
  const fileFramework = optionalString(payload, "framework", source);
  if (fileFramework !== undefined && !FRAMEWORKS.includes(fileFramework as Framework)) {
    throw new UploadError(`${source}: framework "${fileFramework}" is not one of ${FRAMEWORKS.join(", ")}`);
  }
  const environment = payload.environment;
  if (environment !== undefined && environment !== null) {
    if (!isPlainObject(environment) || Object.values(environment).some((v) => typeof v !== "string")) {
      throw new UploadError(`${source}: "environment" must be an object of string values`);
    }
  }
  const metadata = payload.metadata;
  if (metadata !== undefined && metadata !== null && !isPlainObject(metadata)) {
    throw new UploadError(`${source}: "metadata" must be an object`);
  }
  const fields: Partial<PayloadFields> = {
    repo_id: context.repoId,
    commit_sha: run.commit ?? optionalString(payload, "commit_sha", source),
    run_id: run.runId ?? optionalString(payload, "run_id", source),
    framework: context.framework ?? (fileFramework as Framework | undefined) ?? defaultFramework,
    branch: run.branch ?? optionalString(payload, "branch", source),
    pull_request: run.pullRequest ?? optionalString(payload, "pull_request", source),
    environment: (environment ?? undefined) as Record<string, string> | undefined,
    metadata: (metadata ?? undefined) as Record<string, unknown> | undefined,
    idempotency_key: optionalString(payload, "idempotency_key", source),
  };
  return finishFields(fields, run.provider, source);
}

/** The service validates each result in full; this only catches what would break splitting. */
function checkedResults(tests: unknown[], source: string): unknown[] {
  const bad = tests.findIndex((t) => !isPlainObject(t));
  if (bad !== -1) throw new UploadError(`${source}: test result ${bad} is not an object`);
  return tests;
}

/** XML files go into one `reports` body, bare arrays into one `tests` body, each payload file into its own. */
function buildGroups(inputs: LoadedInput[], context: GroupContext): UploadGroup[] {
  const groups: UploadGroup[] = [];
  let reports: ReportItem[] | undefined;
  let tests: TestItem[] | undefined;
  for (const input of inputs) {
    if (input.kind === "junit") {
      if (countTestcases(input.content) === 0) {
        context.warnings.push(`${input.source}: no <testcase> elements, nothing to send from it`);
        continue;
      }
      if (!reports) {
        reports = [];
        groups.push({ kind: "reports", fields: fieldsFor(context, "junit"), reports });
      }
      reports.push({ format: "junit", content: input.content, source: input.source });
    } else if (input.kind === "tests") {
      if (input.tests.length === 0) {
        context.warnings.push(`${input.source}: no test results, nothing to send from it`);
        continue;
      }
      if (!tests) {
        tests = [];
        groups.push({ kind: "tests", fields: fieldsFor(context, "unknown"), tests });
      }
      for (const value of checkedResults(input.tests, input.source)) tests.push({ value, source: input.source });
    } else {
      const { payload, source } = input;
      const fields = fieldsFor(context, Array.isArray(payload.reports) ? "junit" : "unknown", input);
      if (Array.isArray(payload.tests)) {
        if (payload.tests.length === 0) {
          context.warnings.push(`${source}: no test results, nothing to send from it`);
          continue;
        }
        groups.push({
          kind: "tests",
          fields,
          tests: checkedResults(payload.tests, source).map((value) => ({ value, source })),
        });
      } else if (Array.isArray(payload.reports)) {
        const items: ReportItem[] = [];
        for (const report of payload.reports as unknown[]) {
          if (!isPlainObject(report) || typeof report.format !== "string" || typeof report.content !== "string") {
            throw new UploadError(`${source}: each entry of "reports" needs a string "format" and "content"`);
          }
          items.push({ format: report.format, content: report.content, source });
        }
        groups.push({ kind: "reports", fields, reports: items });
      } else {
        throw new UploadError(`${source}: "tests" (or "reports") must be an array`);
      }
    }
  }
  return groups;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

function positiveInteger(value: number, name: string, min = 1): number {
  if (!Number.isInteger(value) || value < min) throw new UploadError(`${name} must be a whole number ≥ ${min}`);
  return value;
}

// ---------------------------------------------------------------------------------------------------------

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
  if (!UUID.test(repoId)) throw new UploadError(`repository id "${repoId}" is not a uuid`);
  const scheme = options.signature ?? "v2";
  if (scheme !== "v1" && scheme !== "v2") throw new UploadError(`--signature must be v1 or v2`);
  const secret = options.secret ?? env.ANCHORPIPE_SECRET ?? "";
  if (!options.dryRun) {
    if (!secret) throw new UploadError("no secret: set ANCHORPIPE_SECRET (it is never taken from a flag)");
    if (scheme === "v2") {
      try {
        decodeWebhookSecret(secret);
      } catch (error) {
        if (error instanceof SecretFormatError) throw new UploadError(error.message);
        throw error;
      }
    }
  }
  const limits = {
    maxResults: positiveInteger(options.maxResults ?? DEFAULTS.maxResults, "--max-results"),
    maxBytes: positiveInteger(options.maxBytes ?? DEFAULTS.maxBytes, "--max-bytes", 1024),
  };
  const timeoutMs = positiveInteger(options.timeoutMs ?? DEFAULTS.timeoutMs, "--timeout");
  const retries = positiveInteger(options.retries ?? DEFAULTS.retries, "--retries", 0);
  const retryDelayMs = positiveInteger(options.retryDelayMs ?? DEFAULTS.retryDelayMs, "--retry-delay", 0);
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

  let plan: ReturnType<typeof planParts>;
  try {
    plan = planParts(groups, limits);
  } catch (error) {
    if (error instanceof SplitError) throw new UploadError(error.message);
    throw error;
  }
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
        ? "webhook-id, webhook-timestamp, webhook-signature"
        : "x-fr-sig (and idempotency_key in the body)";
    reporter.info(`  headers: authorization: Bearer ${repoId}, content-type: application/json, ${signatureHeaders}`);
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
