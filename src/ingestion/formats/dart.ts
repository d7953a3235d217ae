import {
  checkItemBudget,
  count,
  countResults,
  details,
  isObject,
  keepEveryTest,
  msFromMs,
  ndjsonLines,
  parseJsonLine,
  relativePath,
  text,
} from "./common";
import { type ParsedReport, type ParsedTestResult, ReportParseError } from "./types";

/**
 * Dart and Flutter's JSON reporter (`dart test --reporter json`, `flutter test --machine`): one event a
 * line. A test is its suite's file and its full name (group names and its own); hidden tests (a suite's
 * loading, setUpAll/tearDownAll) count only when they fail, since then the suite's tests never ran.
 * Mapping: docs/report-formats.md.
 */

interface DartTest {
  name: string;
  suitePath: string;
  startTime?: number;
  errors: string[];
  skipReason?: string;
}

export function parseDartReport(content: string): ParsedReport {
  const suites = new Map<number, string>();
  const running = new Map<number, DartTest>();
  const attempts: ParsedTestResult[] = [];
  let sawProtocol = false;

  for (const { line, number } of ndjsonLines(content)) {
    // flutter prints a few lines of its own ahead of the events ("Downloading…", "Running…").
    if (!line.startsWith("{")) continue;
    const event = parseJsonLine(line, number, "dart/flutter JSON");
    const type = event.type;
    if (typeof type !== "string") {
      throw new ReportParseError(`dart/flutter JSON: the event at line ${number} has no type`, { line: number });
    }
    sawProtocol = true;
    if (type === "suite" && isObject(event.suite)) {
      const id = count(event.suite.id);
      if (id !== undefined) suites.set(id, relativePath(text(event.suite.path) ?? "(unknown)"));
    } else if (type === "testStart" && isObject(event.test)) {
      const id = count(event.test.id);
      if (id === undefined) continue;
      const suiteId = count(event.test.suiteID);
      const metadata = isObject(event.test.metadata) ? event.test.metadata : {};
      running.set(id, {
        name: text(event.test.name) ?? "(unnamed)",
        suitePath: (suiteId === undefined ? undefined : suites.get(suiteId)) ?? "(unknown)",
        startTime: typeof event.time === "number" ? event.time : undefined,
        errors: [],
        skipReason: text(metadata.skipReason),
      });
      checkItemBudget(running.size, "running tests", { line: number });
    } else if (type === "error") {
      const test = running.get(count(event.testID) ?? -1);
      if (test && test.errors.length < 20) test.errors.push(details(text(event.error), text(event.stackTrace)) ?? "");
    } else if (type === "testDone") {
      const id = count(event.testID) ?? -1;
      const test = running.get(id);
      if (!test) continue;
      running.delete(id);
      const failed = event.result === "failure" || event.result === "error";
      if (event.hidden === true && !failed) continue;
      const status = failed ? "fail" : event.skipped === true ? "skip" : "pass";
      attempts.push({
        path: test.suitePath,
        name: test.name,
        status,
        durationMs:
          typeof event.time === "number" && test.startTime !== undefined
            ? msFromMs(event.time - test.startTime)
            : undefined,
        failureDetails: failed ? details(...test.errors) : undefined,
        rerunCount: 0,
        metadata:
          event.hidden === true
            ? { hidden: true }
            : status === "skip" && test.skipReason
              ? { skipReason: test.skipReason }
              : undefined,
      });
      checkItemBudget(attempts.length, "test results", { line: number });
    }
  }
  if (!sawProtocol) throw new ReportParseError("dart/flutter JSON: no test events found", { line: 1 });
  if (attempts.length === 0) throw new ReportParseError("dart/flutter JSON: no test results found", { line: 1 });
  // Dart allows two tests of one name in one file (flutter's provider package has four such pairs): each is kept.
  const results = keepEveryTest(attempts);
  return { results, totals: {}, counted: countResults(attempts), attempts: attempts.length };
}
