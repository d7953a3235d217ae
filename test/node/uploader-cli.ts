import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import path from "node:path";

const CLI = path.resolve(import.meta.dirname, "../../tools/uploader/cli.ts");

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcessWithoutNullStreams;
  /** Resolves when the process has exited and its output is closed. */
  done: Promise<CliRun>;
  /** Resolves once stdout has shown `text`. */
  printed(text: string): Promise<void>;
}

/**
 * `anchorpipe <args…>` as CI runs it: a child process in a clean environment (none of the CI variables of
 * whatever runs the test) plus `env`. By default the checkout's CLI on this Node; `command` runs another
 * one, such as an installed package's bin.
 */
export function startCli(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  command: string[] = [process.execPath, CLI],
): RunningCli {
  const [program, ...before] = command;
  const child = spawn(program!, [...before, ...args], { cwd, env: { PATH: process.env.PATH ?? "", ...env } });
  let stdout = "";
  let stderr = "";
  const waiting: Array<{ text: string; resolve: () => void }> = [];
  child.stdout.on("data", (d) => {
    stdout += d;
    for (const w of waiting.filter((w) => stdout.includes(w.text))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve();
    }
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
  const printed = (text: string) =>
    stdout.includes(text) ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ text, resolve }));
  return { child, done, printed };
}

/** `anchorpipe <args…>` run to the end (see startCli). */
export function runCli(args: string[], env: Record<string, string>, cwd: string, command?: string[]): Promise<CliRun> {
  return startCli(args, env, cwd, command).done;
}

/** `anchorpipe upload <args…>` run to the end (see startCli). */
export function runUploadCli(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  command?: string[],
): Promise<CliRun> {
  return runCli(["upload", ...args], env, cwd, command);
}
