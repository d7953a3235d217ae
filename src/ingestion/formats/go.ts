import {
  checkItemBudget,
  countResults,
  details,
  foldAttempts,
  isoFromText,
  keepTail,
  msFromSeconds,
  ndjsonLines,
  parseJsonLine,
  text,
} from "./common";
import { MAX_DETAILS_CHARS, type ParsedReport, type ParsedTestResult, ReportParseError } from "./types";

/**
 * `go test -json` (test2json events, one JSON object a line; also what `gotestsum --jsonfile` saves).
 * Every pass/fail/skip event of a test is one attempt; a test run again in the same stream (`go test
 * -count`, `gotestsum --rerun-fails`) folds into one result with its earlier failures as reruns. Subtests
 * (`TestA/case`) are tests of their own, as go and gotestsum count them. Mapping: docs/report-formats.md.
 */

interface Running {
  output: string;
  startedAt?: string;
}

/** Output kept while a test runs: its tail, which is where go puts the failure. */
function append(running: Running, chunk: string): void {
  running.output += chunk;
  if (running.output.length > 2 * MAX_DETAILS_CHARS) running.output = keepTail(running.output, MAX_DETAILS_CHARS);
}

export function parseGoTestReport(content: string): ParsedReport {
  const running = new Map<string, Running>();
  const attempts = new Map<string, ParsedTestResult[]>();
  const packages = new Map<string, { output: Running; failed: boolean; testFailed: boolean }>();
  let attemptCount = 0;
  let events = 0;

  for (const { line, number } of ndjsonLines(content)) {
    // test2json passes through what is not an event (a build error printed to stdout, `go vet` notes).
    if (!line.startsWith("{")) continue;
    const event = parseJsonLine(line, number, "go test -json");
    const action = event.Action;
    if (typeof action !== "string") {
      throw new ReportParseError(`go test -json: the event at line ${number} has no Action`, { line: number });
    }
    events++;
    const pkg = text(event.Package) ?? text(event.ImportPath) ?? "(no package)";
    const test = text(event.Test);
    let packageState = packages.get(pkg);
    if (!packageState) {
      packageState = { output: { output: "" }, failed: false, testFailed: false };
      packages.set(pkg, packageState);
    }
    if (test === undefined) {
      if (action === "output" && typeof event.Output === "string") append(packageState.output, event.Output);
      if (action === "fail" || action === "build-fail") packageState.failed = true;
      continue;
    }
    const key = `${pkg}\u0000${test}`;
    if (action === "run") {
      running.set(key, { output: "", startedAt: isoFromText(event.Time) });
      checkItemBudget(running.size, "running tests", { line: number });
    } else if (action === "output") {
      let state = running.get(key);
      if (!state) {
        state = { output: "" };
        running.set(key, state);
      }
      if (typeof event.Output === "string") append(state, event.Output);
    } else if (action === "pass" || action === "fail" || action === "skip") {
      const state = running.get(key) ?? { output: "" };
      running.delete(key);
      const status = action === "pass" ? "pass" : action === "fail" ? "fail" : "skip";
      if (status === "fail") packageState.testFailed = true;
      const group = attempts.get(key) ?? [];
      group.push({
        path: pkg,
        name: test,
        status,
        startedAt: state.startedAt ?? isoFromText(event.Time),
        durationMs: msFromSeconds(event.Elapsed),
        failureDetails: status === "fail" ? details(state.output) : undefined,
        rerunCount: 0,
        suite: pkg,
        metadata: status === "skip" && details(state.output) ? { skipReason: details(state.output) } : undefined,
      });
      attempts.set(key, group);
      attemptCount++;
      checkItemBudget(attemptCount, "test results", { line: number });
    }
  }
  if (events === 0) throw new ReportParseError("go test -json: no test2json events found", { line: 1 });

  const results = [...attempts.values()].map((group) => foldAttempts(group));
  // A package that failed without a failing test (TestMain exited, a panic outside tests, a build failure):
  // one failed result named as gotestsum's JUnit names it, so both formats give the same identity.
  for (const [pkg, state] of packages) {
    if (state.failed && !state.testFailed) {
      results.push({
        path: pkg,
        name: "TestMain",
        status: "fail",
        failureDetails: details(state.output.output),
        rerunCount: 0,
        suite: pkg,
        metadata: { packageFailure: true },
      });
      attemptCount++;
    }
  }
  if (results.length === 0) throw new ReportParseError("go test -json: no test results found", { line: 1 });
  const counted = countResults([...attempts.values()].flat());
  return { results, totals: {}, counted, attempts: attemptCount };
}
