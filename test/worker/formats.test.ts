/// <reference types="vite/client" />
// Runs inside workerd: every report parser has to work at the edge, not just in Node.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  detectFormat,
  MAX_REPORT_ITEMS,
  type ParsedReport,
  type ParsedTestResult,
  parseReport,
  REPORT_FORMATS,
  type ReportFormat,
  ReportParseError,
} from "../../src/ingestion/formats";
import ctrfGithubReporter from "../fixtures/ctrf/github-test-reporter.json?raw";
import ctrfPlaywright from "../fixtures/ctrf/playwright-ctrf-flaky-project.json?raw";
import dartDorny from "../fixtures/dart-json/dart-dorny.json?raw";
import dartEnricomi from "../fixtures/dart-json/dart-enricomi.json?raw";
import flutterProvider from "../fixtures/dart-json/flutter-provider.json?raw";
import goDorny from "../fixtures/go-test-json/golang-dorny.json?raw";
import gotestsumInput from "../fixtures/go-test-json/gotestsum-input.out?raw";
import gotestsumParallel from "../fixtures/go-test-json/gotestsum-parallel-fails.out?raw";
import jestBooks from "../fixtures/jest-json/jest-testresultsprocessor-books.json?raw";
import vitestYalc from "../fixtures/jest-json/vitest-yalc.json?raw";
import antBadDuration from "../fixtures/junit/ant-bad-duration.xml?raw";
import antTestsuites from "../fixtures/junit/ant-testsuites.xml?raw";
import bunNested from "../fixtures/junit/bun-nested.xml?raw";
import gotestsum from "../fixtures/junit/gotestsum.xml?raw";
import gotestsumRerun from "../fixtures/junit/gotestsum-rerun.xml?raw";
import jestJunit from "../fixtures/junit/jest-junit.xml?raw";
import jestMonorepo from "../fixtures/junit/jest-junit-jest-monorepo.xml?raw";
import junit4Complete from "../fixtures/junit/junit4-complete.xml?raw";
import nested from "../fixtures/junit/nested.xml?raw";
import phpunit from "../fixtures/junit/phpunit.xml?raw";
import pytestXml from "../fixtures/junit/pytest.xml?raw";
import pytestHorovod from "../fixtures/junit/pytest-horovod.xml?raw";
import surefireFlaky from "../fixtures/junit/surefire-flaky.xml?raw";
import surefireFlakyMessage from "../fixtures/junit/surefire-flaky-message.xml?raw";
import surefireRerun from "../fixtures/junit/surefire-rerun.xml?raw";
import swiftXcpretty from "../fixtures/junit/swift-xcpretty.xml?raw";
import testngPulsar from "../fixtures/junit/testng-pulsar.xml?raw";
import unittestXmlrunner from "../fixtures/junit/unittest-xmlrunner.xml?raw";
import mochaDorny from "../fixtures/mocha-json/mocha-dorny.json?raw";
import mochaEnricomi from "../fixtures/mocha-json/mocha-enricomi.json?raw";
import mochaOwnSuite from "../fixtures/mocha-json/mocha-own-suite.json?raw";
import dotnetNunit from "../fixtures/nunit/dotnet-nunit.xml?raw";
import jenkinsNunit2 from "../fixtures/nunit/jenkins-nunit-correct.xml?raw";
import nunitSample from "../fixtures/nunit/nunit-sample.xml?raw";
import playwrightInterial from "../fixtures/playwright-json/e2e-playwright-interial.json?raw";
import pytestJsonSample from "../fixtures/pytest-json/pytest-json-report-sample.json?raw";
import rspecDorny from "../fixtures/rspec-json/rspec-dorny.json?raw";
import trxFluentValidation from "../fixtures/trx/fluentvalidation.trx?raw";
import trxMstestPickles from "../fixtures/trx/mstest-pickles.trx?raw";
import trxNunitAdapter from "../fixtures/trx/nunit-adapter-netcoreapp3.1.trx?raw";
import trxXunit from "../fixtures/trx/xunit-dotnet-trx.trx?raw";
import trxXunitV3 from "../fixtures/trx/xunit-v3.trx?raw";

type StatusCounts = { pass: number; fail: number; skip: number };

function byStatus(results: ParsedTestResult[]): StatusCounts {
  const counts = { pass: 0, fail: 0, skip: 0 };
  for (const result of results) counts[result.status]++;
  return counts;
}

function parseError(format: ReportFormat, content: string): ReportParseError {
  try {
    parseReport(format, content);
  } catch (error) {
    expect(error).toBeInstanceOf(ReportParseError);
    return error as ReportParseError;
  }
  throw new Error("expected a ReportParseError");
}

/**
 * How a fixture's parsed counts reconcile with what the report says of itself:
 *  - "counted": every count the report states equals the same count taken from its items (`counted`);
 *  - a function, for the documented exceptions (the rule is in docs/report-formats.md and in the fixture's README).
 */
type Reconciliation = "counted" | ((report: ParsedReport) => void);

interface Fixture {
  file: string;
  format: ReportFormat;
  content: string;
  results: number;
  statuses: StatusCounts;
  reconcile: Reconciliation;
}

const surefireCountsAttempts: Reconciliation = (report) => {
  // Surefire 3.0.x counts every attempt of a rerun test in `tests` and every failed one in `failures`.
  expect(report.totals.tests).toBe(report.attempts);
  expect(report.totals.failed).toBe(report.attempts - report.results.filter((r) => r.status === "pass").length);
};

const FIXTURES: Fixture[] = [
  // JUnit family
  {
    file: "junit/ant-testsuites.xml",
    format: "junit",
    content: antTestsuites,
    results: 3,
    statuses: { pass: 3, fail: 0, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "junit/ant-bad-duration.xml",
    format: "junit",
    content: antBadDuration,
    results: 1,
    statuses: { pass: 1, fail: 0, skip: 0 },
    // The report counts the test once although it holds two (folded) testcases for it.
    reconcile: (report) => expect(report.totals.tests).toBe(report.results.length),
  },
  {
    file: "junit/surefire-flaky.xml",
    format: "junit",
    content: surefireFlaky,
    results: 1,
    statuses: { pass: 1, fail: 0, skip: 0 },
    reconcile: surefireCountsAttempts,
  },
  {
    file: "junit/surefire-rerun.xml",
    format: "junit",
    content: surefireRerun,
    results: 1,
    statuses: { pass: 0, fail: 1, skip: 0 },
    reconcile: surefireCountsAttempts,
  },
  {
    file: "junit/surefire-flaky-message.xml",
    format: "junit",
    content: surefireFlakyMessage,
    results: 1,
    statuses: { pass: 1, fail: 0, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "junit/junit4-complete.xml",
    format: "junit",
    content: junit4Complete,
    results: 8,
    statuses: { pass: 5, fail: 2, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "junit/pytest.xml",
    format: "junit",
    content: pytestXml,
    results: 10,
    statuses: { pass: 6, fail: 2, skip: 2 },
    // pytest's `tests` also counts each subtest report of test_with_subtests (pytest-subtests), which
    // writes one testcase: 15 = 10 testcases + 5 subtest reports. Failures and skips agree.
    reconcile: (report) => {
      expect(report.totals).toMatchObject({ tests: 15, failed: 2, skipped: 2 });
      expect(report.counted).toMatchObject({ tests: 10, failed: 2, skipped: 2 });
    },
  },
  {
    file: "junit/pytest-horovod.xml",
    format: "junit",
    content: pytestHorovod,
    results: 14,
    statuses: { pass: 10, fail: 0, skip: 4 },
    reconcile: "counted",
  },
  {
    file: "junit/unittest-xmlrunner.xml",
    format: "junit",
    content: unittestXmlrunner,
    results: 8,
    statuses: { pass: 4, fail: 2, skip: 2 },
    reconcile: "counted",
  },
  {
    file: "junit/jest-junit.xml",
    format: "junit",
    content: jestJunit,
    results: 6,
    statuses: { pass: 1, fail: 4, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "junit/jest-junit-jest-monorepo.xml",
    format: "junit",
    content: jestMonorepo,
    results: 4239,
    statuses: { pass: 4207, fail: 2, skip: 30 },
    reconcile: "counted",
  },
  {
    file: "junit/phpunit.xml",
    format: "junit",
    content: phpunit,
    results: 12,
    statuses: { pass: 10, fail: 2, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "junit/swift-xcpretty.xml",
    format: "junit",
    content: swiftXcpretty,
    results: 3,
    statuses: { pass: 2, fail: 1, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "junit/gotestsum.xml",
    format: "junit",
    content: gotestsum,
    results: 2,
    statuses: { pass: 2, fail: 0, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "junit/gotestsum-rerun.xml",
    format: "junit",
    content: gotestsumRerun,
    results: 11,
    statuses: { pass: 5, fail: 4, skip: 2 },
    // gotestsum writes a package's TestMain failure as a testcase but counts it in neither `tests` nor
    // `failures` of its suite (badmain: tests="0"); the other 13 testcases, 6 of them failed, agree.
    reconcile: (report) => {
      expect(report.totals).toMatchObject({ tests: 13, failed: 6 });
      expect(report.counted).toMatchObject({ tests: 14, failed: 7 });
    },
  },
  {
    file: "junit/nested.xml",
    format: "junit",
    content: nested,
    results: 5,
    statuses: { pass: 2, fail: 3, skip: 0 },
    // Hand-edited counters in action-junit-report's fixture: the top suite says 4 tests and no failures
    // while its nested suites hold 5 testcases and say 3 failed. Counted from the testcases.
    reconcile: (report) => expect(report.counted).toMatchObject({ tests: 5, failed: 3 }),
  },
  {
    file: "junit/bun-nested.xml",
    format: "junit",
    content: bunNested,
    results: 3,
    statuses: { pass: 2, fail: 1, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "junit/testng-pulsar.xml",
    format: "junit",
    content: testngPulsar,
    results: 797,
    statuses: { pass: 793, fail: 1, skip: 3 },
    // 808 testcases: 797 tests, 11 of whose testcases are retried attempts TestNG wrote as <skipped/>.
    reconcile: (report) => {
      expect(report.counted).toEqual({ tests: 808, passed: 793, failed: 1, skipped: 14 });
      expect(report.totals).toEqual(report.counted);
      const retried = report.results.reduce((total, r) => total + r.rerunCount, 0);
      expect(report.results.length + retried).toBe(report.totals.tests);
      expect(byStatus(report.results).skip + retried).toBe(report.totals.skipped);
    },
  },
  // .NET
  {
    file: "trx/xunit-dotnet-trx.trx",
    format: "trx",
    content: trxXunit,
    results: 11,
    statuses: { pass: 5, fail: 5, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "trx/xunit-v3.trx",
    format: "trx",
    content: trxXunitV3,
    results: 4,
    statuses: { pass: 1, fail: 3, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "trx/mstest-pickles.trx",
    format: "trx",
    content: trxMstestPickles,
    results: 4,
    statuses: { pass: 3, fail: 1, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "trx/nunit-adapter-netcoreapp3.1.trx",
    format: "trx",
    content: trxNunitAdapter,
    results: 6,
    statuses: { pass: 2, fail: 3, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "trx/fluentvalidation.trx",
    format: "trx",
    content: trxFluentValidation,
    results: 804,
    statuses: { pass: 803, fail: 0, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "nunit/dotnet-nunit.xml",
    format: "nunit",
    content: dotnetNunit,
    results: 9,
    statuses: { pass: 3, fail: 5, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "nunit/nunit-sample.xml",
    format: "nunit",
    content: nunitSample,
    results: 18,
    statuses: { pass: 12, fail: 2, skip: 4 },
    reconcile: "counted",
  },
  {
    file: "nunit/jenkins-nunit-correct.xml",
    format: "nunit",
    content: jenkinsNunit2,
    results: 28,
    statuses: { pass: 18, fail: 2, skip: 8 },
    reconcile: "counted",
  },
  // JavaScript
  {
    file: "jest-json/jest-testresultsprocessor-books.json",
    format: "jest-json",
    content: jestBooks,
    results: 6,
    statuses: { pass: 6, fail: 0, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "jest-json/vitest-yalc.json",
    format: "jest-json",
    content: vitestYalc,
    results: 201,
    statuses: { pass: 201, fail: 0, skip: 0 },
    reconcile: "counted",
  },
  {
    file: "mocha-json/mocha-dorny.json",
    format: "mocha-json",
    content: mochaDorny,
    results: 6,
    statuses: { pass: 1, fail: 4, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "mocha-json/mocha-enricomi.json",
    format: "mocha-json",
    content: mochaEnricomi,
    results: 5,
    statuses: { pass: 2, fail: 2, skip: 1 },
    reconcile: "counted",
  },
  {
    file: "mocha-json/mocha-own-suite.json",
    format: "mocha-json",
    content: mochaOwnSuite,
    results: 839,
    statuses: { pass: 833, fail: 0, skip: 6 },
    reconcile: "counted",
  },
  {
    file: "playwright-json/e2e-playwright-interial.json",
    format: "playwright-json",
    content: playwrightInterial,
    results: 2,
    statuses: { pass: 1, fail: 1, skip: 0 },
    // Playwright 1.31 wrote no `stats`: there is nothing to reconcile with.
    reconcile: (report) => expect(report.totals).toEqual({}),
  },
  // Python, Ruby
  {
    file: "pytest-json/pytest-json-report-sample.json",
    format: "pytest-json",
    content: pytestJsonSample,
    results: 10,
    statuses: { pass: 3, fail: 5, skip: 2 },
    reconcile: "counted",
  },
  {
    file: "rspec-json/rspec-dorny.json",
    format: "rspec-json",
    content: rspecDorny,
    results: 3,
    statuses: { pass: 1, fail: 1, skip: 1 },
    reconcile: "counted",
  },
  // Streams: go and dart state no totals; the counts are checked against the fixtures' own summaries in the READMEs.
  {
    file: "go-test-json/golang-dorny.json",
    format: "go-test-json",
    content: goDorny,
    results: 12,
    statuses: { pass: 5, fail: 6, skip: 1 },
    reconcile: (r) => expect(r.totals).toEqual({}),
  },
  {
    file: "go-test-json/gotestsum-input.out",
    format: "go-test-json",
    content: gotestsumInput,
    results: 60,
    statuses: { pass: 42, fail: 13, skip: 5 },
    // 59 test results plus badmain's package failure, reported as its TestMain (as gotestsum's JUnit does).
    reconcile: (r) => expect(r.counted.tests).toBe(59),
  },
  {
    file: "go-test-json/gotestsum-parallel-fails.out",
    format: "go-test-json",
    content: gotestsumParallel,
    results: 12,
    statuses: { pass: 4, fail: 8, skip: 0 },
    reconcile: (r) => expect(r.totals).toEqual({}),
  },
  {
    file: "dart-json/dart-dorny.json",
    format: "dart-json",
    content: dartDorny,
    results: 6,
    statuses: { pass: 1, fail: 4, skip: 1 },
    reconcile: (r) => expect(r.totals).toEqual({}),
  },
  {
    file: "dart-json/dart-enricomi.json",
    format: "dart-json",
    content: dartEnricomi,
    results: 20,
    statuses: { pass: 16, fail: 3, skip: 1 },
    reconcile: (r) => expect(r.totals).toEqual({}),
  },
  {
    file: "dart-json/flutter-provider.json",
    format: "dart-json",
    content: flutterProvider,
    results: 269,
    statuses: { pass: 268, fail: 1, skip: 0 },
    reconcile: (r) => expect(r.totals).toEqual({}),
  },
  // CTRF
  {
    file: "ctrf/github-test-reporter.json",
    format: "ctrf",
    content: ctrfGithubReporter,
    results: 10,
    statuses: { pass: 5, fail: 2, skip: 3 },
    reconcile: "counted",
  },
  {
    file: "ctrf/playwright-ctrf-flaky-project.json",
    format: "ctrf",
    content: ctrfPlaywright,
    results: 10,
    statuses: { pass: 0, fail: 10, skip: 0 },
    reconcile: "counted",
  },
];

describe("the corpus of real reports: counts reconcile with the reports' own totals", () => {
  it.each(FIXTURES.map((f) => [f.file, f] as const))("%s", (_file, fixture) => {
    const report = parseReport(fixture.format, fixture.content);
    expect(report.results).toHaveLength(fixture.results);
    expect(byStatus(report.results)).toEqual(fixture.statuses);
    // No two results share an identity: nothing is lost when test cases are upserted by (path, name).
    expect(new Set(report.results.map((r) => `${r.path}\u0000${r.name}`)).size).toBe(report.results.length);
    expect(report.attempts).toBeGreaterThanOrEqual(report.results.length);
    if (fixture.reconcile === "counted") {
      expect(Object.keys(report.totals).length).toBeGreaterThan(0);
      expect(report.counted).toMatchObject(report.totals);
    } else {
      fixture.reconcile(report);
    }
  });

  it("every format has a corpus", () => {
    expect(new Set(FIXTURES.map((f) => f.format))).toEqual(new Set(REPORT_FORMATS));
  });
});

describe("detectFormat", () => {
  it.each(FIXTURES.map((f) => [f.file, f] as const))("%s", (_file, fixture) => {
    expect(detectFormat(fixture.content)).toBe(fixture.format);
  });

  it("says null for what it does not read", () => {
    for (const content of ["", "hello", "{}", "[]", '{"a":1}', "<html><body/></html>", "<assemblies/>", "\uFEFF  \n"]) {
      expect(detectFormat(content), content).toBeNull();
    }
  });

  it("looks past a BOM, an XML declaration, comments and leading non-JSON lines", () => {
    expect(detectFormat('\uFEFF<?xml version="1.0"?>\n<!-- x -->\n<testsuites/>')).toBe("junit");
    expect(detectFormat("Running tests…\n" + '{"protocolVersion":"0.1.1","type":"start","time":0}\n')).toBe(
      "dart-json",
    );
    expect(detectFormat('{"Time":"2024-01-01T00:00:00Z","Action":"start","Package":"p"}\n')).toBe("go-test-json");
  });
});

describe("JUnit: the identity defects of issue #11", () => {
  it('jest-junit with classname="": the suite\'s file is the path, so same-titled tests in different files stay apart', () => {
    const report = parseReport("junit", jestMonorepo);
    expect(report.results).toHaveLength(4239); // was 3,982
    expect(report.results.find((r) => r.name === "picks a name based on the rootDir")).toMatchObject({
      path: "packages/jest-config/src/__tests__/normalize.test.js",
      suite: undefined,
    });
    // A describe block (the classname) qualifies the title as in jest's own full name.
    const describeBlock = report.results.filter(
      (r) => r.name === "test/it error throwing it throws error with missing callback function",
    );
    expect(describeBlock.map((r) => r.path).sort()).toEqual([
      "packages/jest-circus/src/__tests__/circusItTestError.test.ts",
      "packages/jest-jasmine2/src/__tests__/itTestError.test.ts",
    ]);
    // jest allows two tests of one title in one file: both kept, the second numbered.
    const twins = report.results.filter(
      (r) =>
        r.path === "packages/jest-snapshot/src/__tests__/InlineSnapshots.test.ts" &&
        r.name.startsWith("saveInlineSnapshots() creates template literal with property matchers"),
    );
    expect(twins.map((r) => [r.name, r.metadata?.invocation])).toEqual([
      ["saveInlineSnapshots() creates template literal with property matchers", 1],
      ["saveInlineSnapshots() creates template literal with property matchers [#2]", 2],
    ]);
  });

  it("TestNG: a retried attempt (written as a bare <skipped/>) folds into the final attempt, in any order", () => {
    const { results } = parseReport("junit", testngPulsar);
    const find = (path: string, name: string) => results.find((r) => r.path === path && r.name === name);
    // skipped then failed: failed after one retry
    expect(find("org.apache.pulsar.AddMissingPatchVersionTest", "testVersionStrings")).toMatchObject({
      status: "fail",
      rerunCount: 1,
      metadata: { attempts: 2 },
    });
    // passed, then the retried attempt written after it: a flaky pass
    expect(
      find("org.apache.pulsar.broker.transaction.buffer.TransactionStablePositionTest", "commitTxnTest"),
    ).toMatchObject({ status: "pass", rerunCount: 1, durationMs: 33_426 });
    // four retries before a pass
    expect(
      find(
        "org.apache.pulsar.tests.TestRetrySupportBeforeMethodRetryTest",
        "shouldNotDoAnythingWhenThereIsBeforeAndAfterMethod",
      ),
    ).toMatchObject({ status: "pass", rerunCount: 4, metadata: { attempts: 5 } });
  });

  it("TestNG: data-provider invocations (several results that are not skips) are distinct tests", () => {
    const { results } = parseReport("junit", testngPulsar);
    const invocations = results.filter(
      (r) =>
        r.path === "org.apache.pulsar.tests.EnumValuesDataProviderTest" && r.name.startsWith("testEnumValuesProvider"),
    );
    expect(invocations.map((r) => r.name)).toEqual([
      "testEnumValuesProvider",
      "testEnumValuesProvider [#2]",
      "testEnumValuesProvider [#3]",
    ]);
    expect(invocations.every((r) => r.rerunCount === 0 && r.status === "pass")).toBe(true);
  });

  it("elsewhere repeated testcases are attempts in the order they ran (gotestsum --rerun-fails, Gradle test-retry)", () => {
    const gradleRetry =
      '<testsuite name="com.acme.CartTest" tests="3" failures="1"><testcase classname="com.acme.CartTest" name="adds" time="0.2"><failure message="boom">trace</failure></testcase>' +
      '<testcase classname="com.acme.CartTest" name="adds" time="0.1"/><testcase classname="com.acme.CartTest" name="removes" time="0.1"/></testsuite>';
    const report = parseReport("junit", gradleRetry);
    expect(report.results.map((r) => [r.name, r.status, r.rerunCount, r.failureDetails])).toEqual([
      ["adds", "pass", 1, "boom\n\ntrace"],
      ["removes", "pass", 0, undefined],
    ]);
    expect(report.counted).toMatchObject(report.totals);
    expect(report.attempts).toBe(3);
  });

  it("PHPUnit: nested suites with file attributes; the class qualifies the method", () => {
    const { results } = parseReport("junit", phpunit);
    expect(results.every((r) => r.path.endsWith(".phpt") || r.path.endsWith(".php"))).toBe(true);
  });
});

describe("retries and flaky markers become rerunCount", () => {
  it("Playwright: each result is an attempt; flaky is a pass after failures; the project is part of the identity", () => {
    // The shape of Playwright's JSON reporter (no public report with retries was found; see the README).
    const report = parseReport(
      "playwright-json",
      JSON.stringify({
        config: { rootDir: "/home/runner/work/shop/shop/e2e", projects: [{ name: "chromium" }, { name: "firefox" }] },
        suites: [
          {
            title: "cart.spec.ts",
            file: "cart.spec.ts",
            specs: [],
            suites: [
              {
                title: "cart",
                file: "cart.spec.ts",
                specs: [
                  {
                    title: "adds an item",
                    file: "cart.spec.ts",
                    tests: [
                      {
                        projectName: "chromium",
                        status: "flaky",
                        results: [
                          {
                            retry: 0,
                            status: "failed",
                            duration: 900,
                            startTime: "2025-01-01T10:00:00.000Z",
                            error: { message: "\u001b[31mTimeout\u001b[39m" },
                          },
                          { retry: 1, status: "passed", duration: 800, startTime: "2025-01-01T10:00:01.000Z" },
                        ],
                      },
                      {
                        projectName: "firefox",
                        status: "expected",
                        results: [{ retry: 0, status: "passed", duration: 700 }],
                      },
                      {
                        projectName: "webkit",
                        status: "unexpected",
                        results: [
                          { retry: 0, status: "failed", duration: 1 },
                          {
                            retry: 1,
                            status: "timedOut",
                            duration: 2,
                            errors: [{ message: "Test timeout of 30000ms exceeded." }],
                          },
                        ],
                      },
                    ],
                  },
                ],
              },
            ],
          },
        ],
        stats: { expected: 1, unexpected: 1, flaky: 1, skipped: 0 },
      }),
    );
    expect(report.results.map((r) => [r.path, r.name, r.status, r.rerunCount])).toEqual([
      ["cart.spec.ts", "[chromium] › cart › adds an item", "pass", 1],
      ["cart.spec.ts", "[firefox] › cart › adds an item", "pass", 0],
      ["cart.spec.ts", "[webkit] › cart › adds an item", "fail", 1],
    ]);
    expect(report.results[0]).toMatchObject({
      durationMs: 1700,
      startedAt: "2025-01-01T10:00:00.000Z",
      failureDetails: "Timeout",
      metadata: { project: "chromium", flaky: true, attempts: 2 },
    });
    expect(report.counted).toMatchObject(report.totals);
    expect(report.attempts).toBe(5);
  });

  it("CTRF: retries and flaky (a flaky test failed at least once)", () => {
    const report = parseReport("ctrf", ctrfGithubReporter);
    const flaky = report.results.filter((r) => r.metadata?.flaky === true);
    expect(flaky.map((r) => [r.status, r.rerunCount])).toEqual([
      ["pass", 2],
      ["pass", 1],
      ["pass", 3],
    ]);
    const marked = parseReport(
      "ctrf",
      JSON.stringify({
        results: { tool: { name: "x" }, tests: [{ name: "t", status: "passed", duration: 1, flaky: true }] },
      }),
    );
    expect(marked.results[0]).toMatchObject({ rerunCount: 1, metadata: { flaky: true } });
  });

  it("CTRF: the suite (with Playwright's project) is part of the name", () => {
    const { results } = parseReport("ctrf", ctrfPlaywright);
    expect(results[0]).toMatchObject({
      path: "/Users/pati/flaky-test-detector/src/tests/coffee.stable.refactored.spec.ts",
      name: "chromium > coffee.stable.refactored.spec.ts > Coffee Purchase Flow - Stable Tests > Should complete full coffee purchase flow with validation",
      status: "fail",
    });
  });

  it("jest: invocations and retryReasons (jest.retryTimes) are earlier failed attempts", () => {
    const report = parseReport(
      "jest-json",
      JSON.stringify({
        numTotalTests: 2,
        numPassedTests: 1,
        numFailedTests: 1,
        numPendingTests: 0,
        testResults: [
          {
            name: "/home/runner/work/app/app/src/cart.test.ts",
            startTime: 1_700_000_000_000,
            assertionResults: [
              {
                ancestorTitles: ["cart"],
                title: "adds",
                fullName: "cart adds",
                status: "passed",
                duration: 5,
                invocations: 3,
                retryReasons: ["Error: one", "Error: two"],
              },
              {
                ancestorTitles: ["cart"],
                title: "removes",
                fullName: "cart removes",
                status: "failed",
                duration: 5,
                invocations: 2,
                failureMessages: ["Error: \u001b[31mnope\u001b[39m"],
              },
            ],
          },
        ],
      }),
    );
    expect(report.results.map((r) => [r.path, r.name, r.status, r.rerunCount, r.failureDetails])).toEqual([
      ["src/cart.test.ts", "cart adds", "pass", 2, "Error: two"],
      ["src/cart.test.ts", "cart removes", "fail", 1, "Error: nope"],
    ]);
    expect(report.counted).toMatchObject(report.totals);
  });

  it("Mocha: currentRetry is the number of failed attempts before the result", () => {
    const report = parseReport(
      "mocha-json",
      JSON.stringify({
        stats: { tests: 1, passes: 1, pending: 0, failures: 0 },
        tests: [
          { title: "t", fullTitle: "s t", file: "/github/workspace/test/a.js", duration: 3, currentRetry: 2, err: {} },
        ],
        passes: [],
        failures: [],
        pending: [],
      }),
    );
    expect(report.results).toEqual([
      expect.objectContaining({
        path: "test/a.js",
        name: "s t",
        status: "pass",
        rerunCount: 2,
        metadata: { attempts: 3 },
      }),
    ]);
  });

  it("go test -json: a test run again in the same stream folds (gotestsum --rerun-fails)", () => {
    const event = (Action: string, Test?: string, extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        Time: "2024-05-01T10:00:00.123456789+02:00",
        Action,
        Package: "example.com/shop",
        ...(Test ? { Test } : {}),
        ...extra,
      });
    const stream = [
      event("start"),
      event("run", "TestCheckout"),
      event("output", "TestCheckout", { Output: "    shop_test.go:12: timeout\n" }),
      event("fail", "TestCheckout", { Elapsed: 0.5 }),
      event("run", "TestCheckout"),
      event("pass", "TestCheckout", { Elapsed: 0.25 }),
      event("run", "TestCheckout/subtest"),
      event("skip", "TestCheckout/subtest", { Elapsed: 0 }),
      event("pass", undefined, { Elapsed: 1 }),
    ].join("\n");
    const report = parseReport("go-test-json", stream);
    expect(report.results).toEqual([
      {
        path: "example.com/shop",
        name: "TestCheckout",
        status: "pass",
        startedAt: "2024-05-01T08:00:00.123Z",
        durationMs: 750,
        failureDetails: "shop_test.go:12: timeout",
        rerunCount: 1,
        suite: "example.com/shop",
        metadata: { attempts: 2 },
      },
      expect.objectContaining({ name: "TestCheckout/subtest", status: "skip", rerunCount: 0 }),
    ]);
    expect(report.attempts).toBe(3);
  });
});

describe("format details", () => {
  it("TRX: the class is the path, xUnit's qualified test name loses the class prefix, theories keep their arguments", () => {
    const { results } = parseReport("trx", trxXunit);
    expect(results.find((r) => r.name === "Passing_Test")).toMatchObject({
      path: "DotnetTests.XUnitTests.CalculatorTests",
      status: "pass",
      startedAt: "2021-04-20T06:31:33.006Z",
    });
    expect(results.find((r) => r.name === "Should be even number(i: 3)")).toMatchObject({
      status: "fail",
      failureDetails: expect.stringMatching(/^Assert\.True\(\) Failure\r?\nExpected: True/),
    });
  });

  it("NUnit 3: parameterised cases keep their arguments; NUnit 2 full names split into class and method", () => {
    const v3 = parseReport("nunit", dotnetNunit).results;
    expect(v3.find((r) => r.name === "Exception_In_TargetTest")).toMatchObject({
      path: "DotnetTests.XUnitTests.CalculatorTests",
      status: "fail",
      metadata: { label: "Error" },
    });
    const v2 = parseReport("nunit", jenkinsNunit2).results;
    expect(v2.find((r) => r.name === "FailingTest")).toMatchObject({
      path: "NUnit.Tests.Assemblies.MockTestFixture",
      status: "fail",
    });
  });

  it("pytest-json-report: the node id splits into path and name; xfail is a skip, error a fail", () => {
    const { results } = parseReport("pytest-json", pytestJsonSample);
    expect(results.find((r) => r.name === "test_xfail")).toMatchObject({
      path: "test_create_report.py",
      status: "skip",
      metadata: { xfail: true },
    });
    expect(results.find((r) => r.name === "test_fail_during_setup")).toMatchObject({
      status: "fail",
      metadata: { failureKind: "error" },
    });
    expect(results.find((r) => r.name === "test_parametrized[2]")?.failureDetails).toMatch(/^assert 2 == 1\n\nx = 2/);
  });

  it("dart/flutter: the CI checkout prefix is cut; hidden loading tests count only when they fail", () => {
    const { results } = parseReport("dart-json", flutterProvider);
    expect(results.every((r) => r.path.startsWith("test/"))).toBe(true);
    expect(results.some((r) => r.name.startsWith("loading "))).toBe(false);
  });

  it("RSpec: file and full description", () => {
    expect(parseReport("rspec-json", rspecDorny).results[1]).toMatchObject({
      path: "spec/config/check_env_vars_spec.rb",
      name: "CheckEnvVars#call when all env vars are defined behaves like success load fails in assertion",
      status: "fail",
    });
  });
});

/** The smallest real report of each format: what the property tests break. */
const SMALLEST = REPORT_FORMATS.map((format) => {
  const candidates = FIXTURES.filter((f) => f.format === format);
  return [format, candidates.reduce((a, b) => (a.content.length <= b.content.length ? a : b)).content] as const;
});

function onlyParseErrors(format: ReportFormat, content: string): void {
  try {
    const report = parseReport(format, content);
    expect(Array.isArray(report.results)).toBe(true);
  } catch (error) {
    if (!(error instanceof ReportParseError)) throw error;
    expect(error.message.length).toBeGreaterThan(0);
  }
}

describe("bad input in any format is a ReportParseError that says where it broke", () => {
  it.each(SMALLEST)("%s: truncated anywhere, corrupted anywhere, or garbage: only parse errors", (format, content) => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: content.length }), (cut) => onlyParseErrors(format, content.slice(0, cut))),
      { numRuns: 150 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: content.length - 1 }),
        fc.string({ minLength: 1, maxLength: 3 }),
        (at, junk) => onlyParseErrors(format, content.slice(0, at) + junk + content.slice(at + 1)),
      ),
      { numRuns: 150 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (garbage) => onlyParseErrors(format, garbage)),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(fc.json(), (json) => onlyParseErrors(format, json)),
      { numRuns: 100 },
    );
  });

  it.each(SMALLEST)(
    "%s: a report cut in half names a line (XML, NDJSON) or a line and column (JSON)",
    (format, content) => {
      let cut = content.slice(0, Math.floor(content.length / 2));
      // Streams read what is whole: cut inside a line to break one.
      if (format === "go-test-json" || format === "dart-json")
        cut = `${cut.slice(0, cut.lastIndexOf("\n") + 1)}{"Action":"ru`;
      const error = parseError(format, cut);
      expect(error.line, error.message).toBeGreaterThan(0);
      expect(error.message).toMatch(/line \d+/);
    },
  );

  it("a JSON document of the wrong shape names the path", () => {
    expect(
      parseError("jest-json", '{"testResults":[{"name":"a.test.js","assertionResults":[{"status":"exploded"}]}]}').path,
    ).toBe("testResults.0.assertionResults.0.status");
    expect(parseError("playwright-json", '{"suites":{}}').path).toBe("suites");
    expect(parseError("ctrf", '{"results":{"tests":[{"status":"passed"}]}}').path).toBe("results.tests.0.name");
    expect(parseError("rspec-json", '{"examples":[1]}').path).toBe("examples.0");
  });

  it("deep nesting and huge numbers are parse errors or results, never a crash", () => {
    onlyParseErrors("jest-json", `${"[".repeat(100_000)}${"]".repeat(100_000)}`);
    onlyParseErrors("playwright-json", JSON.stringify({ suites: [nest(5_000)] }));
    onlyParseErrors("junit", `${"<testsuite>".repeat(5_000)}<testcase name="a"/>${"</testsuite>".repeat(5_000)}`);
    onlyParseErrors(
      "mocha-json",
      '{"stats":{},"tests":[{"fullTitle":"x","file":"y","duration":1e400,"currentRetry":-1}]}',
    );
  });

  it("an unknown format is a parse error", () => {
    expect(parseError("junit-ish" as ReportFormat, "<x/>").message).toMatch(/unknown report format "junit-ish"/);
  });
});

function nest(depth: number): unknown {
  let suite: Record<string, unknown> = {
    title: "leaf",
    specs: [{ title: "t", tests: [{ status: "expected", results: [] }] }],
  };
  for (let i = 0; i < depth; i++) suite = { title: `s${i}`, suites: [suite] };
  return suite;
}

describe("bounded work", () => {
  it(`a stream of more than ${MAX_REPORT_ITEMS.toLocaleString("en-US")} tests stops early with a parse error`, () => {
    const lines: string[] = [];
    for (let i = 0; i <= MAX_REPORT_ITEMS; i++) lines.push(`{"Action":"pass","Package":"p","Test":"T${i}"}`);
    const error = parseError("go-test-json", lines.join("\n"));
    expect(error.message).toMatch(/more than 50,000 test results/);
    expect(error.line).toBe(MAX_REPORT_ITEMS + 1);
  });
});
