import { spawn } from "node:child_process";
import path from "node:path";

const CLI = path.resolve(import.meta.dirname, "../../tools/uploader/cli.ts");

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `anchorpipe upload …` as CI runs it: a child process in a clean environment (none of the CI variables of
 * whatever runs the test) plus `env`. By default the checkout's CLI on this Node; `command` runs another
 * one, such as an installed package's bin.
 */
export function runUploadCli(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  command: string[] = [process.execPath, CLI],
): Promise<CliRun> {
  const [program, ...before] = command;
  return new Promise((resolve, reject) => {
    const child = spawn(program!, [...before, "upload", ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? "", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
