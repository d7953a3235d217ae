import {
  checkItemBudget,
  count,
  countResults,
  details,
  expectArray,
  expectObject,
  isObject,
  isoFromEpochMs,
  isoFromText,
  type JsonObject,
  keepEveryTest,
  msFromMs,
  parseJson,
  relativePath,
  stated,
  sum,
  text,
} from "./common";
import { type ParsedReport, type ParsedTestResult, type ReportCounts, ReportParseError } from "./types";

/**
 * JavaScript runners' JSON: jest `--json` (and vitest `--reporter=json`, which writes jest's shape),
 * Mocha's `json` reporter and Playwright's `json` reporter. Mapping: docs/report-formats.md.
 */

/** Terminal colour codes (jest, vitest and Playwright colour their failure messages). Linear: one class, one quantifier. */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");
const plain = (value: unknown): string | undefined => (typeof value === "string" ? value.replace(ANSI, "") : undefined);

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

// ---------------------------------------------------------------------------------------------- jest / vitest

const JEST_SKIP = new Set(["pending", "skipped", "todo", "disabled"]);

function jestStatus(status: unknown, path: string): ParsedTestResult["status"] {
  if (status === "passed") return "pass";
  if (status === "failed") return "fail";
  if (typeof status === "string" && JEST_SKIP.has(status)) return "skip";
  throw new ReportParseError(`jest JSON: ${path}.status must be passed, failed, pending, skipped, todo or disabled`, {
    path: `${path}.status`,
  });
}

export function parseJestReport(content: string): ParsedReport {
  const report = expectObject(parseJson(content, "jest"), "", "jest JSON");
  const files = expectArray(report.testResults, "testResults", "jest JSON");
  const results: ParsedTestResult[] = [];
  for (const [fileIndex, fileValue] of files.entries()) {
    const filePath = `testResults.${fileIndex}`;
    const file = expectObject(fileValue, filePath, "jest JSON");
    // `--json` writes `name` and `assertionResults`; a testResultsProcessor receives `testFilePath` and `testResults`.
    const fileName = text(file.name) ?? text(file.testFilePath) ?? "(unknown)";
    const key = Array.isArray(file.assertionResults) ? "assertionResults" : "testResults";
    const assertions = expectArray(file[key], `${filePath}.${key}`, "jest JSON");
    const fileStart = isoFromEpochMs(file.startTime ?? (isObject(file.perfStats) ? file.perfStats.start : undefined));
    for (const [index, value] of assertions.entries()) {
      const path = `${filePath}.${key}.${index}`;
      const assertion = expectObject(value, path, "jest JSON");
      checkItemBudget(results.length + 1, "tests", { path });
      const titles = strings(assertion.ancestorTitles);
      const title = text(assertion.title) ?? "(untitled)";
      const status = jestStatus(assertion.status, path);
      const retryReasons = strings(assertion.retryReasons);
      const invocations = count(assertion.invocations) ?? 1;
      const rerunCount = Math.max(retryReasons.length, invocations - 1);
      const failures = strings(assertion.failureMessages).map((message) => plain(message));
      results.push({
        path: relativePath(fileName),
        name: text(assertion.fullName) ?? [...titles, title].join(" "),
        status,
        startedAt: isoFromEpochMs(assertion.startAt) ?? fileStart,
        durationMs: msFromMs(assertion.duration),
        failureDetails: status === "fail" ? details(...failures) : details(plain(retryReasons.at(-1))),
        rerunCount,
        suite: titles.length > 0 ? titles.join(" ") : undefined,
        metadata: rerunCount > 0 ? { attempts: rerunCount + 1 } : undefined,
      });
    }
  }
  if (results.length === 0) throw new ReportParseError("jest JSON: no test results found", { path: "testResults" });
  const number = (key: string) => count(report[key]);
  const totals = stated({
    tests: number("numTotalTests"),
    passed: number("numPassedTests"),
    failed: number("numFailedTests"),
    skipped: sum(number("numPendingTests"), number("numTodoTests")),
  });
  return {
    results: keepEveryTest(results),
    totals,
    counted: countResults(results),
    attempts: results.reduce((total, r) => total + 1 + r.rerunCount, 0),
  };
}

// ---------------------------------------------------------------------------------------------------- Mocha

const mochaKey = (test: JsonObject) => `${String(test.file)}\u0000${String(test.fullTitle)}`;

export function parseMochaReport(content: string): ParsedReport {
  const report = expectObject(parseJson(content, "Mocha"), "", "Mocha JSON");
  const tests = expectArray(report.tests, "tests", "Mocha JSON");
  const failures = expectArray(report.failures, "failures", "Mocha JSON", true);
  const pending = new Set(
    expectArray(report.pending, "pending", "Mocha JSON", true)
      .filter(isObject)
      .map((test) => mochaKey(test)),
  );
  const start = isoFromText(isObject(report.stats) ? report.stats.start : undefined);
  const read = (value: unknown, path: string): ParsedTestResult => {
    const test = expectObject(value, path, "Mocha JSON");
    checkItemBudget(Number(path.slice(path.lastIndexOf(".") + 1)) + 1, "tests", { path });
    const error = isObject(test.err) ? test.err : {};
    const failed = Object.keys(error).length > 0;
    const status = pending.has(mochaKey(test)) ? "skip" : failed ? "fail" : "pass";
    const retries = count(test.currentRetry) ?? 0;
    return {
      path: relativePath(text(test.file) ?? "(unknown)"),
      name: text(test.fullTitle) ?? text(test.title) ?? "(untitled)",
      status,
      startedAt: start,
      durationMs: msFromMs(test.duration),
      failureDetails: failed ? details(plain(error.message), plain(error.stack)) : undefined,
      // currentRetry is the index of the attempt that produced this result: that many attempts failed before.
      rerunCount: status === "skip" ? 0 : retries,
      metadata: retries > 0 && status !== "skip" ? { attempts: retries + 1 } : undefined,
    };
  };
  const results = tests.map((test, index) => read(test, `tests.${index}`));
  // A failing hook ("before each" hook for …) is reported as a failure but is not one of the tests.
  const known = new Set(tests.filter(isObject).map((test) => mochaKey(test)));
  const hooks = failures
    .map((failure, index) => [failure, index] as const)
    .filter(([failure]) => isObject(failure) && !known.has(mochaKey(failure)))
    .map(([failure, index]) => ({ ...read(failure, `failures.${index}`), metadata: { hook: true } }));
  if (results.length + hooks.length === 0) throw new ReportParseError("Mocha JSON: no tests found", { path: "tests" });

  const stats = isObject(report.stats) ? report.stats : {};
  const counted = countResults([...results, ...hooks]);
  return {
    results: keepEveryTest([...results, ...hooks]),
    totals: stated({
      tests: count(stats.tests),
      passed: count(stats.passes),
      failed: count(stats.failures),
      skipped: count(stats.pending),
    }),
    // Mocha's `tests` counts tests, not failing hooks; its `failures` counts both.
    counted: { ...counted, tests: results.length },
    attempts: [...results, ...hooks].reduce((total, r) => total + 1 + r.rerunCount, 0),
  };
}

// ----------------------------------------------------------------------------------------------- Playwright

interface PlaywrightContext {
  rootDir?: string;
  describes: string[];
  file?: string;
}

function playwrightResult(
  test: JsonObject,
  spec: JsonObject,
  context: PlaywrightContext,
  path: string,
): ParsedTestResult {
  const attempts = expectArray(test.results, `${path}.results`, "Playwright JSON", true).filter(isObject);
  const outcome = test.status;
  const last = attempts.at(-1);
  let status: ParsedTestResult["status"];
  if (outcome === "unexpected") status = "fail";
  else if (outcome === "flaky") status = "pass";
  else if (outcome === "skipped") status = "skip";
  else if (outcome === "expected") status = last?.status === "skipped" ? "skip" : "pass";
  else {
    throw new ReportParseError(`Playwright JSON: ${path}.status must be expected, unexpected, flaky or skipped`, {
      path: `${path}.status`,
    });
  }
  const project = text(test.projectName);
  const title = text(spec.title) ?? "(untitled)";
  const titlePath = [...context.describes, title].join(" › ");
  const failed = attempts.filter((attempt) => attempt.status !== "passed" && attempt.status !== "skipped");
  const lastFailure = failed.at(-1);
  const errors = lastFailure
    ? [lastFailure.error, ...(Array.isArray(lastFailure.errors) ? lastFailure.errors : [])].filter(isObject)
    : [];
  const durations = attempts.flatMap((attempt) => {
    const ms = msFromMs(attempt.duration);
    return ms === undefined ? [] : [ms];
  });
  // Playwright retries only a failed attempt: every result but the last is a failed one.
  const rerunCount = Math.max(0, attempts.length - 1);
  const metadata: Record<string, unknown> = {};
  if (project) metadata.project = project;
  if (outcome === "flaky") metadata.flaky = true;
  if (rerunCount > 0) metadata.attempts = attempts.length;
  return {
    path: relativePath(text(spec.file) ?? context.file ?? "(unknown)", context.rootDir),
    // The project is part of the identity: the same spec in chromium and in firefox is two tests.
    name: project ? `[${project}] › ${titlePath}` : titlePath,
    status,
    startedAt: isoFromText(attempts[0]?.startTime),
    durationMs: durations.length > 0 ? durations.reduce((total, d) => total + d, 0) : undefined,
    failureDetails: errors.length > 0 ? details(plain(errors[0]!.message), plain(errors[0]!.stack)) : undefined,
    rerunCount,
    suite: context.describes.length > 0 ? context.describes.join(" › ") : undefined,
    metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
  };
}

function visitPlaywrightSuite(
  suite: JsonObject,
  context: PlaywrightContext,
  path: string,
  out: ParsedTestResult[],
  top: boolean,
): void {
  const title = text(suite.title);
  // The top-level suites are files (their title is the file); below them, describe blocks.
  const inner: PlaywrightContext = {
    rootDir: context.rootDir,
    file: text(suite.file) ?? context.file,
    describes: top || title === undefined ? context.describes : [...context.describes, title],
  };
  for (const [specIndex, specValue] of expectArray(suite.specs, `${path}.specs`, "Playwright JSON", true).entries()) {
    const specPath = `${path}.specs.${specIndex}`;
    const spec = expectObject(specValue, specPath, "Playwright JSON");
    for (const [testIndex, testValue] of expectArray(spec.tests, `${specPath}.tests`, "Playwright JSON").entries()) {
      const testPath = `${specPath}.tests.${testIndex}`;
      checkItemBudget(out.length + 1, "tests", { path: testPath });
      out.push(playwrightResult(expectObject(testValue, testPath, "Playwright JSON"), spec, inner, testPath));
    }
  }
  for (const [index, child] of expectArray(suite.suites, `${path}.suites`, "Playwright JSON", true).entries()) {
    visitPlaywrightSuite(
      expectObject(child, `${path}.suites.${index}`, "Playwright JSON"),
      inner,
      `${path}.suites.${index}`,
      out,
      false,
    );
  }
}

export function parsePlaywrightReport(content: string): ParsedReport {
  const report = expectObject(parseJson(content, "Playwright"), "", "Playwright JSON");
  const suites = expectArray(report.suites, "suites", "Playwright JSON");
  const rootDir = isObject(report.config) ? text(report.config.rootDir) : undefined;
  const results: ParsedTestResult[] = [];
  for (const [index, suite] of suites.entries()) {
    visitPlaywrightSuite(
      expectObject(suite, `suites.${index}`, "Playwright JSON"),
      { rootDir, describes: [] },
      `suites.${index}`,
      results,
      true,
    );
  }
  if (results.length === 0) throw new ReportParseError("Playwright JSON: no tests found", { path: "suites" });

  let totals: Partial<ReportCounts> = {};
  if (isObject(report.stats)) {
    const expected = count(report.stats.expected);
    const unexpected = count(report.stats.unexpected);
    const flaky = count(report.stats.flaky);
    const skipped = count(report.stats.skipped);
    totals = stated({
      tests: sum(expected, unexpected, flaky, skipped),
      passed: sum(expected, flaky),
      failed: unexpected,
      skipped,
      flaky,
    });
  }
  const flaky = results.filter((r) => r.metadata?.flaky === true).length;
  return {
    results: keepEveryTest(results),
    totals,
    counted: { ...countResults(results), flaky },
    attempts: results.reduce((total, r) => total + 1 + r.rerunCount, 0),
  };
}
