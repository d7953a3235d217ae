/**
 * The decision of `anchorpipe test`: may a failed test command pass because every test that failed is
 * quarantined?
 *
 * The failing results are read from the same reports, grouped the same way, as the upload sends them
 * (inputs.ts, groups.ts) and parsed with the service's own parsers (src/ingestion/formats), so a result
 * carries the identity the service stores it under: path, name and the framework of its upload. A failure
 * is tolerated when the quarantine list holds that test: the same path, name and framework, or, when no
 * entry has that framework, the same path and name (a report uploaded once as `junit` and once as `jest`
 * is still the same test to a person).
 */
import { type Framework, testResultSchema } from "../../src/contract/ingestion.ts";
import { parseReport } from "../../src/ingestion/formats/index.ts";
import { buildGroups, type GroupContext } from "./groups.ts";
import { type LoadedInput, loadInput } from "./inputs.ts";
import type { QuarantinedTest, QuarantineList } from "./quarantine.ts";

/** One failing result of the reports, under the identity the service gives it. */
export interface FailedResult {
  path: string;
  name: string;
  framework: string;
  suite?: string;
  /** The report file it came from. */
  source: string;
}

export interface ReportFailures {
  failures: FailedResult[];
  /** Results read from the reports, whatever their status. */
  results: number;
  /** Reports that could not be read (then no failure can be tolerated: some may be hidden in them). */
  unreadable: Array<{ source: string; message: string }>;
}

// The groups' commit and run id are not needed to read identities; these stand in when they are unknown.
const PLACEHOLDER_RUN = { commit: "0".repeat(40), runId: "anchorpipe-test" };

function identityKey(path: string, name: string, framework?: string | null): string {
  return framework === undefined ? JSON.stringify([path, name]) : JSON.stringify([path, name, framework ?? ""]);
}

/** The failing results in `files`, each once, in report order. */
export async function failuresInReports(
  files: string[],
  cwd: string,
  options: { framework?: Framework } = {},
): Promise<ReportFailures> {
  const unreadable: ReportFailures["unreadable"] = [];
  const inputs: LoadedInput[] = [];
  for (const file of files) {
    try {
      inputs.push(await loadInput(file, cwd));
    } catch (error) {
      unreadable.push({ source: file, message: (error as Error).message });
    }
  }
  const context: GroupContext = {
    repoId: "00000000-0000-4000-8000-000000000000",
    run: { provider: null, ...PLACEHOLDER_RUN },
    framework: options.framework,
    warnings: [],
  };
  let groups: ReturnType<typeof buildGroups>;
  try {
    groups = buildGroups(inputs, context);
  } catch (error) {
    unreadable.push({ source: "(reports)", message: (error as Error).message });
    groups = [];
  }

  const failures: FailedResult[] = [];
  const seen = new Set<string>();
  let results = 0;
  const add = (
    result: { path: string; name: string; status: string; suite?: string | null },
    framework: string,
    source: string,
  ) => {
    results += 1;
    if (result.status !== "fail") return;
    const key = identityKey(result.path, result.name, framework);
    if (seen.has(key)) return;
    seen.add(key);
    failures.push({ path: result.path, name: result.name, framework, suite: result.suite ?? undefined, source });
  };
  for (const group of groups) {
    const framework = group.fields.framework;
    for (const item of group.items) {
      if (group.kind === "reports") {
        const report = item.value as { format?: unknown; content?: unknown };
        try {
          for (const result of parseReport(String(report.format), String(report.content)).results) {
            add(result, framework, item.source);
          }
        } catch (error) {
          unreadable.push({ source: item.source, message: (error as Error).message });
        }
      } else {
        const parsed = testResultSchema.safeParse(item.value);
        if (parsed.success) add(parsed.data, framework, item.source);
        else
          unreadable.push({ source: `${item.source}: test result ${item.index ?? 0}`, message: "not a valid result" });
      }
    }
  }
  return { failures, results, unreadable };
}

export interface Tolerated {
  failure: FailedResult;
  quarantined: QuarantinedTest;
  matchedBy: "path, name and framework" | "path and name";
}

/** Looks up failures in the quarantine list by the service's identity, then by path and name. */
export function matchQuarantine(
  failures: FailedResult[],
  list: QuarantineList,
): { tolerated: Tolerated[]; notQuarantined: FailedResult[] } {
  const exact = new Map<string, QuarantinedTest>();
  const byPathName = new Map<string, QuarantinedTest>();
  for (const test of list.tests) {
    exact.set(identityKey(test.path, test.name, test.framework), test);
    if (!byPathName.has(identityKey(test.path, test.name))) byPathName.set(identityKey(test.path, test.name), test);
  }
  const tolerated: Tolerated[] = [];
  const notQuarantined: FailedResult[] = [];
  for (const failure of failures) {
    const same = exact.get(identityKey(failure.path, failure.name, failure.framework));
    const similar = byPathName.get(identityKey(failure.path, failure.name));
    if (same) tolerated.push({ failure, quarantined: same, matchedBy: "path, name and framework" });
    else if (similar) tolerated.push({ failure, quarantined: similar, matchedBy: "path and name" });
    else notQuarantined.push(failure);
  }
  return { tolerated, notQuarantined };
}

/** How the command ended: its exit code, or the signal that ended it. */
export interface CommandExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be started at all (ENOENT, EACCES…). */
  error?: string;
}

export type Verdict =
  /** The command passed: nothing to decide. */
  | "passed"
  /** It could not be started, or was ended by a signal: its status stands. */
  | "not-run"
  | "interrupted"
  /** The quarantine list could not be fetched: the command's status stands. */
  | "no-list"
  /** It failed but wrote no reports, some could not be read, or they show no failure (a crash, a compile error). */
  | "no-reports"
  | "unreadable-reports"
  | "no-failures"
  /** Every failure is quarantined: exit 0. */
  | "all-quarantined"
  /** Some failures are not quarantined: the command's status stands. */
  | "not-quarantined";

export interface Decision {
  exitCode: number;
  verdict: Verdict;
  commandExitCode: number;
  tolerated: Tolerated[];
  notQuarantined: FailedResult[];
}

/** The exit code a shell would report: the code, or 128 + the signal's number. */
export function exitCodeOf(exit: CommandExit, signalNumbers: Record<string, number>): number {
  if (exit.code !== null) return exit.code;
  if (exit.signal) return 128 + (signalNumbers[exit.signal] ?? 0);
  return 1;
}

export interface DecideInput {
  exit: CommandExit;
  /** The command's exit status as a number (exitCodeOf). */
  commandExitCode: number;
  /** Null when the list could not be fetched. */
  quarantine: QuarantineList | null;
  /** Report files the command wrote. */
  reportFiles: number;
  failures: ReportFailures;
}

/** Exit 0 only when the command failed, its reports are all readable, and every failing test is quarantined. */
export function decide(input: DecideInput): Decision {
  const { commandExitCode } = input;
  const base = { commandExitCode, tolerated: [], notQuarantined: [] };
  const keep = (verdict: Verdict): Decision => ({ ...base, exitCode: commandExitCode, verdict });
  if (input.exit.error) return keep("not-run");
  if (commandExitCode === 0) return keep("passed");
  if (input.exit.signal) return keep("interrupted");
  if (!input.quarantine) return keep("no-list");
  if (input.reportFiles === 0) return keep("no-reports");
  if (input.failures.unreadable.length > 0) return keep("unreadable-reports");
  if (input.failures.failures.length === 0) return keep("no-failures");
  const { tolerated, notQuarantined } = matchQuarantine(input.failures.failures, input.quarantine);
  if (notQuarantined.length > 0)
    return { commandExitCode, exitCode: commandExitCode, verdict: "not-quarantined", tolerated, notQuarantined };
  return { commandExitCode, exitCode: 0, verdict: "all-quarantined", tolerated, notQuarantined };
}

function describeQuarantined(test: QuarantinedTest): string {
  const facts = [
    test.class ?? undefined,
    test.score === null || test.score === undefined ? undefined : `score ${test.score}`,
    test.reason ?? undefined,
  ].filter(Boolean);
  return facts.length > 0 ? facts.join(", ") : "quarantined";
}

function shownFailure(failure: FailedResult): string {
  return `${failure.path}::${failure.name} (${failure.framework}, in ${failure.source})`;
}

/** What `anchorpipe test` says about its decision, one message per line. */
export function describeDecision(decision: Decision, context: { command: string; patterns: string[] }): string[] {
  const code = decision.commandExitCode;
  const status = `\`${context.command}\` exited with ${code}`;
  switch (decision.verdict) {
    case "passed":
    case "not-run":
      return [];
    case "interrupted":
      return [`${status} (ended by a signal); exiting ${code}`];
    case "no-list":
      return [`${status}; the quarantine list could not be fetched, so nothing is tolerated: exiting ${code}`];
    case "no-reports":
      return [`${status} and wrote no report matching ${context.patterns.join(", ")}; exiting ${code}`];
    case "unreadable-reports":
      return [`${status} and some of its reports could not be read, so no failure is tolerated; exiting ${code}`];
    case "no-failures":
      return [
        `${status} but its reports show no failing test (a crash, a compile error, a failing hook?); exiting ${code}`,
      ];
    case "all-quarantined":
      return [
        `${status}; every failing test is quarantined, so exiting 0. Tolerated failures:`,
        ...decision.tolerated.map(
          (t) =>
            `  tolerated: ${shownFailure(t.failure)}: ${describeQuarantined(t.quarantined)}` +
            (t.matchedBy === "path and name"
              ? ` (quarantined as framework ${t.quarantined.framework ?? "unknown"})`
              : ""),
        ),
      ];
    case "not-quarantined":
      return [
        `${status}; ${decision.notQuarantined.length} failing test${decision.notQuarantined.length === 1 ? " is" : "s are"} not quarantined, exiting ${code}:`,
        ...decision.notQuarantined.map((f) => `  failed: ${shownFailure(f)}`),
        ...decision.tolerated.map(
          (t) =>
            `  quarantined (would be tolerated): ${shownFailure(t.failure)}: ${describeQuarantined(t.quarantined)}`,
        ),
      ];
  }
}
