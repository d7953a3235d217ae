import { pathToFileURL } from "node:url";
import { type Command, CommanderError, InvalidArgumentError } from "commander";

/**
 * What the database tools' command lines share: commander for every one, usage errors exit 2 as these
 * tools always have (commander prints the error and the help), `--help` exits 0.
 */

/** Parses `argv` (the arguments after the script): the program with its options, or the exit code when there is nothing to run. */
export function parseToolArgs(program: Command, argv: string[]): Command | number {
  program.exitOverride().showHelpAfterError();
  try {
    return program.parse(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
}

/** An option's value as a whole number ≥ 1, or commander's usage error. */
export function positiveWholeNumber(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1)
    throw new InvalidArgumentError("must be a positive whole number");
  return Number(value);
}

/** True when the module is the script node (or tsx) was started with, rather than imported by a test. */
export function isMain(moduleUrl: string): boolean {
  return moduleUrl === pathToFileURL(process.argv[1] ?? "").href;
}
