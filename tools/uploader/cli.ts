#!/usr/bin/env node
/**
 * `anchorpipe upload`: sends CI test results to anchorpipe edge; `anchorpipe quarantine` fetches the
 * quarantine list; `anchorpipe test -- <command>` runs tests and tolerates quarantined failures. See
 * README.md next to this file.
 * From a checkout it runs on Node ≥ 22.18 as plain TypeScript (type stripping); `npm run build:uploader`
 * bundles it into the installable package (packages/uploader), which runs on Node ≥ 18.
 */
import { writeFile } from "node:fs/promises";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  FRAMEWORKS,
  type Framework,
  LIMITS,
  SIGNATURE_SCHEMES,
  type SignatureScheme,
} from "../../src/contract/ingestion.ts";
import { resolveExtensionlessImports } from "./checkout-imports.ts";
import { UploadError } from "./errors.ts";
import {
  fetchQuarantine,
  QUARANTINE_FORMATS,
  QuarantineFetchError,
  type QuarantineFormat,
  renderQuarantine,
} from "./quarantine.ts";
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

const urlOption = () => new Option("--url <url>", "service base URL").env("ANCHORPIPE_URL").default(DEFAULT_URL);
const repoIdOption = () => new Option("--repo-id <uuid>", "repository id").env("ANCHORPIPE_REPO_ID");
const timeoutOption = () =>
  new Option("--timeout <seconds>", "per-request timeout").argParser(seconds).default(DEFAULTS.timeoutMs / 1000);
const retriesOption = () =>
  new Option("--retries <n>", "retries on network errors, 408, 429 and 5xx")
    .argParser(wholeNumber(0))
    .default(DEFAULTS.retries);
const retryDelayOption = () =>
  new Option("--retry-delay <ms>", "first backoff delay, doubled per retry")
    .argParser(wholeNumber(0))
    .default(DEFAULTS.retryDelayMs);

/** The options of `upload`, which `test` takes too (all but --strict: there the tests' status decides). */
function addUploadOptions(command: Command, { strict }: { strict: boolean }): Command {
  command
    .addOption(urlOption())
    .addOption(repoIdOption())
    .option("--commit <sha>", "commit SHA, 40 hex characters (default: from the CI)")
    .option("--branch <name>", "branch (default: from the CI)")
    .option("--pull-request <number>", "pull/merge request (default: from the CI)")
    .option("--run-id <id>", "CI run id (default: from the CI)")
    .addOption(
      new Option("--framework <name>", "test framework (default: junit for XML, else the file's or unknown)").choices(
        FRAMEWORKS,
      ),
    )
    .addOption(new Option("--signature <scheme>", "request signature scheme").choices(SIGNATURE_SCHEMES).default("v2"));
  if (strict)
    command.option("--strict", "exit 2 when the service is unreachable or keeps failing (default: warn, exit 0)");
  return command
    .option("--max-results <n>", "results per upload", wholeNumber(1, LIMITS.results), DEFAULTS.maxResults)
    .option("--max-bytes <size>", "body bytes per upload (5242880, 5MiB, 512KiB…)", parseSize, DEFAULTS.maxBytes)
    .addOption(timeoutOption())
    .addOption(retriesOption())
    .addOption(retryDelayOption())
    .option("--dry-run", "show what would be uploaded, send nothing")
    .option("-q, --quiet", "print only warnings and errors");
}

const userAgent = `anchorpipe-uploader/${version} (node ${process.versions.node})`;

function uploadOptions(flags: UploadFlags) {
  return {
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
    userAgent,
  };
}

const ENVIRONMENT_HELP = `
Environment:
  ANCHORPIPE_SECRET   the signing secret (v2: whsec_…). Only read from the environment, never from a flag:
                      flags are echoed into CI logs and shell history.
  ANCHORPIPE_URL, ANCHORPIPE_REPO_ID   defaults for --url and --repo-id.`;

const program = new Command("anchorpipe")
  .description("anchorpipe edge command-line tools")
  .version(version)
  .enablePositionalOptions();

addUploadOptions(
  program
    .command("upload")
    .description("upload test results (JUnit XML or anchorpipe JSON) from CI")
    .argument("[files...]", "JUnit XML (.xml) or JSON (.json) files, or globs such as 'reports/**/*.xml'"),
  { strict: true },
)
  .addHelpText(
    "after",
    `${ENVIRONMENT_HELP}
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
      ...uploadOptions(flags),
      reporter: createReporter({ quiet: flags.quiet, progress: Boolean(process.stdout.isTTY) }),
    });
    process.exitCode = outcome.exitCode;
  });

interface QuarantineFlags {
  url: string;
  repoId?: string;
  format: QuarantineFormat;
  output?: string;
  cache?: string;
  timeout: number;
  retries: number;
  retryDelay: number;
  quiet?: boolean;
}

program
  .command("quarantine")
  .description("print or write the repository's quarantine list (tests CI may skip or tolerate)")
  .addOption(urlOption())
  .addOption(repoIdOption())
  .addOption(
    new Option("--format <format>", "json: the service's JSON; list: <path>::<name> per line; names: test names")
      .choices(QUARANTINE_FORMATS)
      .default("list"),
  )
  .option("-o, --output <file>", "write to this file instead of stdout")
  .option("--cache <file>", "keep the list and its ETag here; sent as If-None-Match, a 304 reuses it")
  .addOption(timeoutOption())
  .addOption(retriesOption())
  .addOption(retryDelayOption())
  .option("-q, --quiet", "print only warnings and errors")
  .addHelpText(
    "after",
    `${ENVIRONMENT_HELP}
  The request is signed like an upload, with the v2 (whsec_…) secret.

Formats:
  json   the service's JSON: { "repoId", "tests": [{ "testId", "path", "name", "suite", "framework",
         "class", "score", "reason", "owners" }] }
  list   one test per line, "<path>::<name>" (backslash, newline and CR escaped as \\\\, \\n, \\r), sorted
  names  one test name per line, sorted and unique (for runners that select by name)

Exit codes:
  0  the list was printed or written (an empty list included)
  1  usage or configuration error, or the service refused the request (4xx)
  2  the service was unreachable or kept failing (network errors, 5xx, 429)`,
  )
  .action(async (flags: QuarantineFlags) => {
    try {
      const fetched = await fetchQuarantine({
        url: flags.url,
        repoId: flags.repoId,
        cacheFile: flags.cache,
        timeoutMs: Math.max(1, Math.round(flags.timeout * 1000)),
        retries: flags.retries,
        retryDelayMs: flags.retryDelay,
        userAgent,
      });
      const text = renderQuarantine(fetched, flags.format);
      for (const warning of fetched.warnings) process.stderr.write(`anchorpipe: warning: ${warning}\n`);
      if (fetched.truncated) {
        process.stderr.write("anchorpipe: warning: the service cut the list to its highest-scored tests\n");
      }
      if (flags.output) {
        await writeFile(flags.output, text);
        const n = fetched.list.tests.length;
        if (!flags.quiet) {
          process.stderr.write(
            `anchorpipe: ${n} quarantined test${n === 1 ? "" : "s"} written to ${flags.output}` +
              `${fetched.fromCache ? " (unchanged since the cached list)" : ""}\n`,
          );
        }
      } else {
        process.stdout.write(text);
      }
    } catch (error) {
      if (!(error instanceof QuarantineFetchError)) throw error;
      process.stderr.write(`anchorpipe: error: ${error.message}\n`);
      process.exitCode = error.unavailable ? 2 : 1;
    }
  });

interface TestFlags extends UploadFlags {
  reports: string[];
  cache?: string;
}

addUploadOptions(
  program
    .command("test")
    .description("run a test command, upload its reports, and tolerate failures of quarantined tests")
    .argument("<command...>", "the test command and its arguments, after --")
    .requiredOption(
      "--reports <glob>",
      "report files the command writes (repeatable; as for upload)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--cache <file>", "quarantine list cache (as for anchorpipe quarantine --cache)")
    .passThroughOptions(),
  { strict: false },
)
  .addHelpText(
    "after",
    `${ENVIRONMENT_HELP}

Example:
  anchorpipe test --reports 'reports/*.xml' -- npx vitest run --reporter=junit --outputFile=reports/junit.xml

  Fetches the quarantine list, runs the command (no shell; SIGINT/SIGTERM are passed on), uploads the report
  files it wrote (new or changed since it started), then exits:
  0                  when the command failed and every failing test in its reports is quarantined (the
                     tolerated failures are listed with the reason, class and score of the list)
  the command's own  otherwise: it passed, some failure is not quarantined, its reports show no failure
                     (a crash, a compile error), or the list could not be fetched (service unreachable)
  An upload that fails is reported but does not change the exit code.`,
  )
  .action(async (command: string[], flags: TestFlags) => {
    // The test command's modules read reports with the service's parsers (see checkout-imports.ts).
    resolveExtensionlessImports();
    const { runTest } = await import("./test-run.ts");
    const outcome = await runTest({
      ...uploadOptions(flags),
      reports: flags.reports,
      cacheFile: flags.cache,
      command,
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
