#!/usr/bin/env node
/**
 * `anchorpipe upload`: sends CI test results to anchorpipe edge. See README.md next to this file.
 * From a checkout it runs on Node ≥ 22.18 as plain TypeScript (type stripping); `npm run build:uploader`
 * bundles it into the installable package (packages/uploader), which runs on Node ≥ 18.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import {
  FRAMEWORKS,
  type Framework,
  LIMITS,
  SIGNATURE_SCHEMES,
  type SignatureScheme,
} from "../../src/contract/ingestion.ts";
import { UploadError } from "./errors.ts";
import { createReporter } from "./reporter.ts";
import { DEFAULT_URL, DEFAULTS, upload } from "./upload.ts";
import { uploaderVersion } from "./version.ts";

// A flag would put the secret in shell history and CI logs, and commander echoes unknown options
// ("--secret=…") back in its error. Refuse before commander sees it, without repeating the value.
const SECRET_FLAG = /^--?(?:[a-z-]*-)?secret(?:=|$)/i;
if (process.argv.slice(2).some((arg) => SECRET_FLAG.test(arg))) {
  process.stderr.write(
    "anchorpipe: error: the secret is never taken from a flag (flags end up in CI logs); set ANCHORPIPE_SECRET instead\n",
  );
  process.exit(1);
}

const version = uploaderVersion();

function wholeNumber(min: number, max?: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < min || (max !== undefined && Number(value) > max)) {
      throw new InvalidArgumentError(
        `expected a whole number ${max === undefined ? `≥ ${min}` : `from ${min} to ${max}`}`,
      );
    }
    return Number(value);
  };
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1e6,
};

/** "5242880", "5MiB", "512k", "4.5 MB". */
function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError("expected a size such as 5242880, 5MiB or 512KiB");
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1024) throw new InvalidArgumentError("must be at least 1 KiB");
  return bytes;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a number of seconds > 0");
  return n;
}

interface UploadFlags {
  url: string;
  repoId?: string;
  commit?: string;
  branch?: string;
  pullRequest?: string;
  runId?: string;
  framework?: Framework;
  signature: SignatureScheme;
  strict?: boolean;
  maxResults: number;
  maxBytes: number;
  timeout: number;
  retries: number;
  retryDelay: number;
  dryRun?: boolean;
  quiet?: boolean;
}

const program = new Command("anchorpipe").description("anchorpipe edge command-line tools").version(version);

program
  .command("upload")
  .description("upload test results (JUnit XML or anchorpipe JSON) from CI")
  .argument("[files...]", "JUnit XML (.xml) or JSON (.json) files, or globs such as 'reports/**/*.xml'")
  .addOption(new Option("--url <url>", "service base URL").env("ANCHORPIPE_URL").default(DEFAULT_URL))
  .addOption(new Option("--repo-id <uuid>", "repository id").env("ANCHORPIPE_REPO_ID"))
  .option("--commit <sha>", "commit SHA, 40 hex characters (default: from the CI)")
  .option("--branch <name>", "branch (default: from the CI)")
  .option("--pull-request <number>", "pull/merge request (default: from the CI)")
  .option("--run-id <id>", "CI run id (default: from the CI)")
  .addOption(
    new Option("--framework <name>", "test framework (default: junit for XML, else the file's or unknown)").choices(
      FRAMEWORKS,
    ),
  )
  .addOption(new Option("--signature <scheme>", "request signature scheme").choices(SIGNATURE_SCHEMES).default("v2"))
  .option("--strict", "exit 2 when the service is unreachable or keeps failing (default: warn, exit 0)")
  .option("--max-results <n>", "results per upload", wholeNumber(1, LIMITS.results), DEFAULTS.maxResults)
  .option("--max-bytes <size>", "body bytes per upload (5242880, 5MiB, 512KiB…)", parseSize, DEFAULTS.maxBytes)
  .option("--timeout <seconds>", "per-request timeout", seconds, DEFAULTS.timeoutMs / 1000)
  .option("--retries <n>", "retries on network errors, 408, 429 and 5xx", wholeNumber(0), DEFAULTS.retries)
  .option("--retry-delay <ms>", "first backoff delay, doubled per retry", wholeNumber(0), DEFAULTS.retryDelayMs)
  .option("--dry-run", "show what would be sent, send nothing")
  .option("-q, --quiet", "print only warnings and errors")
  .addHelpText(
    "after",
    `
Environment:
  ANCHORPIPE_SECRET   the signing secret (v2: whsec_…). Only read from the environment, never from a flag:
                      flags are echoed into CI logs and shell history.
  ANCHORPIPE_URL, ANCHORPIPE_REPO_ID   defaults for --url and --repo-id.
  Commit, branch, pull request and run id are read from GitHub Actions, GitLab CI, Buildkite, CircleCI and
  Jenkins variables; flags override them.

Exit codes:
  0  uploaded (duplicates included), or the service was unreachable / kept failing without --strict
  1  usage, configuration or input error, or the service rejected an upload (4xx)
  2  --strict and the service was unreachable or kept failing (network errors, 5xx, 429)`,
  )
  .action(async (files: string[], flags: UploadFlags) => {
    const outcome = await upload({
      files,
      url: flags.url,
      repoId: flags.repoId,
      commit: flags.commit,
      branch: flags.branch,
      pullRequest: flags.pullRequest,
      runId: flags.runId,
      framework: flags.framework,
      signature: flags.signature,
      strict: flags.strict,
      maxResults: flags.maxResults,
      maxBytes: flags.maxBytes,
      timeoutMs: Math.max(1, Math.round(flags.timeout * 1000)),
      retries: flags.retries,
      retryDelayMs: flags.retryDelay,
      dryRun: flags.dryRun,
      quiet: flags.quiet,
      userAgent: `anchorpipe-uploader/${version} (node ${process.versions.node})`,
      reporter: createReporter({ quiet: flags.quiet, progress: Boolean(process.stdout.isTTY) }),
    });
    process.exitCode = outcome.exitCode;
  });

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof UploadError) {
    process.stderr.write(`anchorpipe: error: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(
      `anchorpipe: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : error}\n`,
    );
    process.exitCode = 1;
  }
}
