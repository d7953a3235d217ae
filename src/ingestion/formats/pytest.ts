import {
  checkItemBudget,
  count,
  details,
  expectArray,
  expectObject,
  expectString,
  foldAttempts,
  groupByIdentity,
  isObject,
  type JsonObject,
  msFromSeconds,
  parseJson,
  relativePath,
  stated,
  sum,
  text,
} from "./common";
import { type ParsedReport, type ParsedTestResult, ReportParseError } from "./types";

/**
 * pytest-json-report (`pytest --json-report`). A test's nodeid is `path::Class::test[params]`: the path
 * before the first `::` is the identity's path, the rest its name (the same identity pytest's JUnit gives
 * with a `file` attribute). Mapping: docs/report-formats.md.
 */

const OUTCOMES: Record<string, { status: ParsedTestResult["status"]; note?: Record<string, unknown> }> = {
  passed: { status: "pass" },
  failed: { status: "fail" },
  error: { status: "fail", note: { failureKind: "error" } },
  skipped: { status: "skip" },
  xfailed: { status: "skip", note: { xfail: true } },
  xpassed: { status: "pass", note: { xpass: true } },
  rerun: { status: "fail", note: { rerun: true } },
};

const STAGES = ["setup", "call", "teardown"] as const;

function stageDetails(test: JsonObject): string | undefined {
  for (const stage of STAGES) {
    const report = test[stage];
    if (!isObject(report) || report.outcome !== "failed") continue;
    const crash = isObject(report.crash) ? text(report.crash.message) : undefined;
    return details(crash, typeof report.longrepr === "string" ? report.longrepr : undefined);
  }
  return undefined;
}

export function parsePytestJsonReport(content: string): ParsedReport {
  const report = expectObject(parseJson(content, "pytest-json-report"), "", "pytest-json-report");
  const tests = expectArray(report.tests, "tests", "pytest-json-report");
  checkItemBudget(tests.length, "tests", { path: "tests" });
  const attempts = tests.map((value, index): ParsedTestResult => {
    const path = `tests.${index}`;
    const test = expectObject(value, path, "pytest-json-report");
    const nodeid = expectString(test.nodeid, `${path}.nodeid`, "pytest-json-report");
    const outcome = OUTCOMES[String(test.outcome)];
    if (!outcome) {
      throw new ReportParseError(
        `pytest-json-report: ${path}.outcome must be one of ${Object.keys(OUTCOMES).join(", ")}`,
        { path: `${path}.outcome` },
      );
    }
    const separator = nodeid.indexOf("::");
    const durations = STAGES.flatMap((stage) => {
      const ms = isObject(test[stage]) ? msFromSeconds((test[stage] as JsonObject).duration) : undefined;
      return ms === undefined ? [] : [ms];
    });
    const skipReason =
      outcome.status === "skip" && isObject(test.setup) && typeof test.setup.longrepr === "string"
        ? test.setup.longrepr
        : undefined;
    return {
      path: relativePath(separator === -1 ? nodeid : nodeid.slice(0, separator)),
      name: separator === -1 ? nodeid : nodeid.slice(separator + 2),
      status: outcome.status,
      durationMs: durations.length > 0 ? durations.reduce((total, d) => total + d, 0) : undefined,
      failureDetails: outcome.status === "fail" ? stageDetails(test) : undefined,
      rerunCount: 0,
      metadata: outcome.note || skipReason ? { ...outcome.note, ...(skipReason ? { skipReason } : {}) } : undefined,
    };
  });
  if (attempts.length === 0) throw new ReportParseError("pytest-json-report: no tests found", { path: "tests" });
  // pytest-rerunfailures reports every attempt of a test under its nodeid, in the order they ran.
  const results = groupByIdentity(attempts).map((group) => foldAttempts(group));

  const summary = isObject(report.summary) ? report.summary : {};
  const number = (key: string) => count(summary[key]);
  const counted = { tests: 0, passed: 0, failed: 0, skipped: 0 };
  for (const attempt of attempts) {
    if (attempt.metadata?.rerun) continue; // pytest-json-report's total leaves reruns out
    counted.tests++;
    if (attempt.status === "pass") counted.passed++;
    else if (attempt.status === "fail") counted.failed++;
    else counted.skipped++;
  }
  return {
    results,
    totals: stated({
      tests: number("total"),
      passed: sum(number("passed"), number("xpassed")),
      failed: sum(number("failed"), number("error")),
      skipped: sum(number("skipped"), number("xfailed")),
    }),
    counted,
    attempts: attempts.length,
  };
}
