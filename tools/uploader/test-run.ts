/**
 * `anchorpipe test [upload options] --reports GLOB -- <command> [args…]`: quarantine without touching the
 * test code.
 *
 *   fetch the quarantine list (not fatal if the service is down)
 *     → run the command (no shell, inherited stdio, SIGINT/SIGTERM forwarded)
 *     → the report files it wrote (new or changed since it started) → upload() them
 *     → decide (tolerate.ts): 0 when every failing test is quarantined, else the command's own status
 *
 * Everything anchorpipe says goes to stderr, so the command's stdout stays its own.
 */
import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import { constants } from "node:os";
import path from "node:path";
import { glob } from "tinyglobby";
import { fetchQuarantine, type QuarantineList } from "./quarantine.ts";
import { createReporter } from "./reporter.ts";
import {
  type CommandExit,
  type Decision,
  decide,
  describeDecision,
  exitCodeOf,
  failuresInReports,
  type ReportFailures,
} from "./tolerate.ts";
import { UploadError, type UploadOptions, type UploadOutcome, upload } from "./upload.ts";

export interface TestRunOptions extends Omit<UploadOptions, "files" | "strict" | "reporter"> {
  /** Report files and globs, as for upload. */
  reports: string[];
  /** The test command and its arguments; run without a shell. */
  command: string[];
  /** The quarantine list's ETag cache (see quarantine.ts). */
  cacheFile?: string;
  /** Where anchorpipe's own messages go. Default: process.stderr. */
  stderr?: NodeJS.WritableStream;
  /** The command's environment (less ANCHORPIPE_SECRET). Default: process.env. */
  commandEnv?: NodeJS.ProcessEnv;
}

export interface TestRunOutcome {
  exitCode: number;
  decision: Decision;
  exit: CommandExit;
  /** Null when the list could not be fetched. */
  quarantine: QuarantineList | null;
  reportFiles: string[];
  failures: ReportFailures;
  /** The upload's outcome, or why it could not be made; null when nothing was uploaded (no reports). */
  upload: UploadOutcome | { error: string } | null;
}

type Snapshot = Map<string, string>;

/** Files the patterns match now, with what identifies a version of each (mtime and size). */
async function snapshot(patterns: string[], cwd: string): Promise<Snapshot> {
  const files: Snapshot = new Map();
  for (const pattern of patterns) {
    const literal = path.resolve(cwd, pattern);
    const info = await stat(literal).catch(() => undefined);
    const matches = info?.isFile()
      ? [literal]
      : await glob(pattern, { cwd, absolute: true, onlyFiles: true, ignore: ["**/node_modules/**", "**/.git/**"] });
    for (const file of matches) {
      const resolved = path.resolve(file);
      if (files.has(resolved)) continue;
      const version = await stat(resolved).then(
        (s) => `${s.mtimeMs}:${s.size}:${s.ino}`,
        () => undefined,
      );
      if (version) files.set(resolved, version);
    }
  }
  return files;
}

/** Runs the command without a shell, with this process's stdio; SIGINT and SIGTERM are passed on to it. */
export function runCommand(command: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<CommandExit> {
  const [program, ...args] = command;
  return new Promise((resolve) => {
    const child = spawn(program!, args, { cwd: options.cwd, env: options.env, stdio: "inherit", shell: false });
    const forward = (signal: NodeJS.Signals) => {
      child.kill(signal);
    };
    const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
    for (const signal of signals) process.on(signal, forward);
    const done = (exit: CommandExit) => {
      for (const signal of signals) process.off(signal, forward);
      resolve(exit);
    };
    child.on("error", (error: NodeJS.ErrnoException) =>
      done({ code: error.code === "ENOENT" ? 127 : 126, signal: null, error: `${error.code ?? error.message}` }),
    );
    child.on("exit", (code, signal) => done({ code, signal }));
  });
}

/** A command line for messages, quoted where a shell would need it. */
function shown(command: string[]): string {
  const text = command.map((arg) => (/^[\w./:=@%+-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
}

export async function runTest(options: TestRunOptions): Promise<TestRunOutcome> {
  if (options.command.length === 0)
    throw new UploadError("no command: give it after --, e.g. anchorpipe test -- npm test");
  if (options.reports.length === 0) {
    throw new UploadError("no reports: say where the command writes them with --reports 'reports/**/*.xml'");
  }
  const cwd = options.cwd ?? process.cwd();
  const stderr = options.stderr ?? process.stderr;
  const say = (line: string) => stderr.write(`anchorpipe: ${line}\n`);
  const commandLine = shown(options.command);

  let quarantine: QuarantineList | null = null;
  try {
    const fetched = await fetchQuarantine({ ...options, cacheFile: options.cacheFile });
    quarantine = fetched.list;
    for (const warning of fetched.warnings) say(`warning: ${warning}`);
    if (fetched.truncated) say("warning: the service cut the quarantine list to its highest-scored tests");
    const n = quarantine.tests.length;
    if (!options.quiet) {
      say(`${n} quarantined test${n === 1 ? "" : "s"}${fetched.fromCache ? " (unchanged since the cached list)" : ""}`);
    }
  } catch (error) {
    say(
      `warning: could not fetch the quarantine list (${(error as Error).message}); ` +
        "running the tests anyway, and their own exit code will stand",
    );
  }

  const before = await snapshot(options.reports, cwd);
  // The tests never need the signing secret, and a test that dumps its environment would print it.
  const { ANCHORPIPE_SECRET: _secret, ...commandEnv } = options.commandEnv ?? process.env;
  const exit = await runCommand(options.command, { cwd, env: commandEnv });
  const commandExitCode = exitCodeOf(exit, constants.signals);
  if (exit.error) say(`error: could not run ${options.command[0]}: ${exit.error}`);

  const after = await snapshot(options.reports, cwd);
  const reportFiles = [...after].filter(([file, version]) => before.get(file) !== version).map(([file]) => file);
  const stale = after.size - reportFiles.length;
  if (stale > 0 && !options.quiet) {
    say(
      `${stale} report file${stale === 1 ? "" : "s"} matching the patterns predate${stale === 1 ? "s" : ""} the command: ignored`,
    );
  }
  let failures: ReportFailures = { failures: [], results: 0, unreadable: [] };
  let uploaded: TestRunOutcome["upload"] = null;
  if (reportFiles.length > 0 && !exit.signal) {
    failures = await failuresInReports(reportFiles, cwd, { framework: options.framework });
    for (const { source, message } of failures.unreadable) say(`warning: ${source}: ${message}`);
    try {
      uploaded = await upload({
        ...options,
        files: reportFiles,
        cwd,
        reporter: createReporter({ quiet: options.quiet, stdout: stderr, stderr }),
      });
      if (uploaded.status === "rejected" || uploaded.status === "unavailable") {
        say(`warning: the upload failed (${uploaded.status}); deciding by the quarantine list all the same`);
      }
    } catch (error) {
      uploaded = { error: (error as Error).message };
      say(`warning: the upload failed: ${(error as Error).message}; deciding by the quarantine list all the same`);
    }
  } else if (reportFiles.length === 0 && !options.quiet) {
    say(`the command wrote no report matching ${options.reports.join(", ")}: nothing to upload`);
  }

  const decision = decide({ exit, commandExitCode, quarantine, reportFiles: reportFiles.length, failures });
  for (const line of describeDecision(decision, { command: commandLine, patterns: options.reports })) say(line);
  return { exitCode: decision.exitCode, decision, exit, quarantine, reportFiles, failures, upload: uploaded };
}
