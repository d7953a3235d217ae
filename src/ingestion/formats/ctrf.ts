import {
  checkItemBudget,
  count,
  countResults,
  details,
  expectArray,
  expectObject,
  expectString,
  isObject,
  isoFromEpochMs,
  keepEveryTest,
  msFromMs,
  parseJson,
  relativePath,
  stated,
  sum,
  text,
} from "./common";
import { type ParsedReport, type ParsedTestResult, ReportParseError } from "./types";

/**
 * CTRF, the Common Test Report Format (ctrf.io), which reporters for Playwright, Jest, Cypress, WebdriverIO,
 * Go, pytest and others write. `retries` and `flaky` are the report's own retry evidence and become
 * `rerunCount` (a flaky test failed at least once before it passed). Mapping: docs/report-formats.md.
 */

const STATUSES: Record<string, ParsedTestResult["status"]> = {
  passed: "pass",
  failed: "fail",
  skipped: "skip",
  pending: "skip",
  other: "skip",
};

/** `suite` is an array of titles in the specification and a " > "-joined string in older reporters. */
function suiteTitles(value: unknown): string[] {
  if (typeof value === "string") return value.trim() === "" ? [] : [value.trim()];
  return Array.isArray(value)
    ? value.filter((item): item is string => typeof item === "string" && item.trim() !== "")
    : [];
}

/** Seconds or milliseconds since the epoch (the specification says epoch; some reporters write seconds). */
function epoch(value: unknown): string | undefined {
  if (typeof value !== "number") return undefined;
  return isoFromEpochMs(value < 1e11 ? value * 1000 : value);
}

export function parseCtrfReport(content: string): ParsedReport {
  const report = expectObject(parseJson(content, "CTRF"), "", "CTRF");
  const body = expectObject(report.results, "results", "CTRF");
  const tests = expectArray(body.tests, "results.tests", "CTRF");
  checkItemBudget(tests.length, "tests", { path: "results.tests" });
  const results = tests.map((value, index): ParsedTestResult => {
    const path = `results.tests.${index}`;
    const test = expectObject(value, path, "CTRF");
    const title = expectString(test.name, `${path}.name`, "CTRF");
    const rawStatus = String(test.status);
    const status = STATUSES[rawStatus];
    if (!status) {
      throw new ReportParseError(`CTRF: ${path}.status must be passed, failed, skipped, pending or other`, {
        path: `${path}.status`,
      });
    }
    const suites = suiteTitles(test.suite);
    const flaky = test.flaky === true;
    const retries = count(test.retries) ?? 0;
    // A flaky test failed before it passed, whether or not its reporter counted the retries.
    const rerunCount = flaky && status === "pass" ? Math.max(1, retries) : retries;
    const metadata: Record<string, unknown> = {};
    if (flaky) metadata.flaky = true;
    if (rawStatus === "pending" || rawStatus === "other") metadata.ctrfStatus = rawStatus;
    if (text(test.rawStatus)) metadata.rawStatus = text(test.rawStatus);
    if (text(test.browser)) metadata.browser = text(test.browser);
    return {
      path: relativePath(text(test.filePath) ?? suites[0] ?? "(unknown)"),
      name: [...suites, title].join(" > "),
      status,
      startedAt: epoch(test.start),
      durationMs: msFromMs(test.duration),
      failureDetails: status === "fail" || flaky ? details(text(test.message), text(test.trace)) : undefined,
      rerunCount,
      suite: suites.length > 0 ? suites.join(" > ") : undefined,
      metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
    };
  });
  if (results.length === 0) throw new ReportParseError("CTRF: no tests found", { path: "results.tests" });

  const summary = isObject(body.summary) ? body.summary : {};
  const number = (key: string) => count(summary[key]);
  const flaky = results.filter((r) => r.metadata?.flaky === true).length;
  return {
    results: keepEveryTest(results),
    totals: stated({
      tests: number("tests"),
      passed: number("passed"),
      failed: number("failed"),
      skipped: sum(number("skipped"), number("pending"), number("other")),
      flaky: number("flaky"),
    }),
    counted: { ...countResults(results), flaky },
    attempts: results.reduce((total, r) => total + 1 + r.rerunCount, 0),
  };
}
