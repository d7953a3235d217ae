import {
  checkItemBudget,
  count,
  countResults,
  details,
  isoFromText,
  keepEveryTest,
  msFromSeconds,
  stated,
  sum,
} from "./common";
import { type ParsedReport, type ParsedTestResult, type ReportCounts, ReportParseError } from "./types";
import { attr, elements, rootName, textOf, type XmlNode, xmlReader } from "./xml";

/**
 * .NET test results: TRX (VSTest's logger, written by `dotnet test --logger trx` for xUnit, NUnit and MSTest
 * alike, and by Microsoft.Testing.Platform's TRX extension) and NUnit's own XML (NUnit 3 `TestResult.xml`,
 * and NUnit 2 `<test-results>`, which Jenkins still receives). Mapping: docs/report-formats.md.
 */

const readTrx = xmlReader(["UnitTestResult", "UnitTest", "InnerResults", "RunInfo"]);
const readNunit = xmlReader(["test-suite", "test-case", "property", "results"]);

const TRX_PASS = new Set(["Passed", "PassedButRunAborted", "Warning", "Completed"]);
const TRX_FAIL = new Set(["Failed", "Error", "Timeout", "Aborted"]);

function trxStatus(outcome: string | undefined): ParsedTestResult["status"] {
  if (outcome !== undefined && TRX_PASS.has(outcome)) return "pass";
  if (outcome !== undefined && TRX_FAIL.has(outcome)) return "fail";
  // NotExecuted, Inconclusive, NotRunnable, Pending, Disconnected, InProgress, or none at all.
  return "skip";
}

/** A TRX duration, `hh:mm:ss.fffffff`, to whole milliseconds. */
function trxDuration(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^(\d{1,4}):(\d{2}):(\d{2}(?:\.\d{1,9})?)$/.exec(value);
  if (!match) return undefined;
  return msFromSeconds(Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]));
}

/** `Namespace.Class, Assembly, Version=…` names the class; the assembly part is not identity. */
function className(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const comma = value.indexOf(",");
  return (comma === -1 ? value : value.slice(0, comma)).trim() || undefined;
}

interface TrxDefinition {
  className?: string;
  storage?: string;
}

export function parseTrxReport(xml: string): ParsedReport {
  const document = readTrx(xml);
  const run = document.TestRun as XmlNode | undefined;
  if (typeof run !== "object" || run === null) {
    throw new ReportParseError(`not a TRX report: the root element is <${rootName(document)}>, not <TestRun>`);
  }
  const definitions = new Map<string, TrxDefinition>();
  for (const test of elements(run.TestDefinitions as XmlNode, "UnitTest")) {
    const id = attr(test, "id");
    const method = elements(test, "TestMethod")[0];
    if (id) definitions.set(id, { className: className(attr(method, "className")), storage: attr(test, "storage") });
  }

  const results: ParsedTestResult[] = [];
  for (const result of elements(run.Results as XmlNode, "UnitTestResult")) {
    checkItemBudget(results.length + 1, "test results");
    const definition = definitions.get(attr(result, "testId") ?? "") ?? {};
    const testName = attr(result, "testName") ?? "(unnamed)";
    const path = definition.className ?? definition.storage ?? "(unknown)";
    // xUnit writes the fully qualified method as the test name; the class is already the path.
    const name =
      definition.className && testName.startsWith(`${definition.className}.`)
        ? testName.slice(definition.className.length + 1)
        : testName;
    const outcome = attr(result, "outcome");
    const status = trxStatus(outcome);
    const error = elements(result.Output as XmlNode, "ErrorInfo")[0];
    const inner = elements(result, "InnerResults").flatMap((node) => elements(node, "UnitTestResult"));
    const innerError = inner
      .map((row) => elements(row.Output as XmlNode, "ErrorInfo")[0])
      .find((info) => info !== undefined);
    const info = error ?? innerError;
    results.push({
      path,
      name,
      status,
      startedAt: isoFromText(attr(result, "startTime")),
      durationMs: trxDuration(attr(result, "duration")),
      failureDetails:
        status === "pass"
          ? undefined
          : details(textOf(elements(info, "Message")[0]), textOf(elements(info, "StackTrace")[0])),
      rerunCount: 0,
      suite: definition.className,
      metadata: outcome && outcome !== "Passed" && outcome !== "Failed" ? { outcome } : undefined,
    });
  }
  if (results.length === 0) throw new ReportParseError("no test results found in <Results>");

  const counters = elements(run.ResultSummary as XmlNode, "Counters")[0];
  const number = (name: string) => count(attr(counters, name));
  const tests = number("total");
  const passed = sum(number("passed"), number("passedButRunAborted"), number("warning"));
  const failed = sum(number("failed"), number("error"), number("timeout"), number("aborted"));
  // Counters have no "skipped": whatever of the total neither passed nor failed was not run.
  const skipped =
    tests !== undefined && passed !== undefined && failed !== undefined ? tests - passed - failed : undefined;
  return {
    results: keepEveryTest(results),
    totals: counters ? stated({ tests, passed, failed, skipped }) : {},
    counted: countResults(results),
    attempts: results.length,
  };
}

const NUNIT3_PASS = new Set(["Passed", "Warning"]);

function nunitStatus(result: string | undefined, v2: boolean): ParsedTestResult["status"] {
  if (v2) {
    if (result === "Success") return "pass";
    if (result === "Failure" || result === "Error" || result === "Cancelled") return "fail";
    return "skip"; // Ignored, Inconclusive, NotRunnable, Skipped
  }
  if (result !== undefined && NUNIT3_PASS.has(result)) return "pass";
  if (result === "Failed") return "fail";
  return "skip"; // Skipped (Ignored, Explicit), Inconclusive
}

/** NUnit 2 names a test case by its full name; the class is everything before the method (and its arguments). */
function splitFullName(fullName: string): { className?: string; name: string } {
  const argsAt = fullName.indexOf("(");
  const head = argsAt === -1 ? fullName : fullName.slice(0, argsAt);
  const dot = head.lastIndexOf(".");
  if (dot <= 0) return { name: fullName };
  return { className: fullName.slice(0, dot), name: fullName.slice(dot + 1) };
}

function visitNunit(node: XmlNode, fixture: string | undefined, v2: boolean, out: ParsedTestResult[]): void {
  for (const testCase of elements(node, "test-case")) {
    checkItemBudget(out.length + 1, "test cases");
    const fullName = attr(testCase, v2 ? "name" : "fullname") ?? attr(testCase, "name") ?? "(unnamed)";
    const split = splitFullName(fullName);
    const className = (v2 ? undefined : attr(testCase, "classname")) ?? split.className ?? fixture;
    const name = v2 ? split.name : (attr(testCase, "name") ?? split.name);
    const result = attr(testCase, "result");
    const status = nunitStatus(result, v2);
    const failure = elements(testCase, "failure")[0];
    const reason = elements(testCase, "reason")[0];
    const label = attr(testCase, "label");
    const seconds = attr(testCase, v2 ? "time" : "duration") ?? attr(testCase, "time");
    out.push({
      path: className ?? "(unknown)",
      name,
      status,
      startedAt: isoFromText(attr(testCase, "start-time")),
      durationMs: msFromSeconds(seconds),
      failureDetails:
        status === "pass"
          ? undefined
          : details(textOf(elements(failure ?? reason, "message")[0]), textOf(elements(failure, "stack-trace")[0])),
      rerunCount: 0,
      suite: className,
      metadata:
        label || (result && result !== "Passed" && result !== "Failed" && result !== "Success" && result !== "Failure")
          ? { ...(result ? { result } : {}), ...(label ? { label } : {}) }
          : undefined,
    });
  }
  for (const suite of elements(node, "test-suite")) {
    const type = attr(suite, "type");
    const nested =
      type === "TestFixture" || type === "ParameterizedFixture"
        ? (attr(suite, "fullname") ?? attr(suite, "name"))
        : fixture;
    visitNunit(suite, nested, v2, out);
    // NUnit 2 keeps a suite's children inside <results>.
    for (const inner of elements(suite, "results")) visitNunit(inner, nested, v2, out);
  }
}

export function parseNunitReport(xml: string): ParsedReport {
  const document = readNunit(xml);
  const v3 = document["test-run"] as XmlNode | undefined;
  const v2 = document["test-results"] as XmlNode | undefined;
  const root = v3 ?? v2;
  if (typeof root !== "object" || root === null) {
    throw new ReportParseError(
      `not an NUnit report: the root element is <${rootName(document)}>, not <test-run> or <test-results>`,
    );
  }
  const results: ParsedTestResult[] = [];
  visitNunit(root, undefined, v3 === undefined, results);
  if (results.length === 0) throw new ReportParseError("no test cases found");

  const number = (name: string) => count(attr(root, name));
  let totals: Partial<ReportCounts>;
  if (v3) {
    const skipped = sum(number("skipped"), number("inconclusive"));
    totals = stated({ tests: number("total"), passed: number("passed"), failed: number("failed"), skipped });
  } else {
    // NUnit 2: `total` counts what ran; tests not run (ignored, invalid, skipped) are counted apart.
    const tests = sum(number("total"), number("not-run"));
    const failed = sum(number("failures"), number("errors"));
    const skipped = sum(number("not-run"), number("inconclusive"));
    const passed =
      tests !== undefined && failed !== undefined && skipped !== undefined ? tests - failed - skipped : undefined;
    totals = stated({ tests, passed, failed, skipped });
  }
  return { results: keepEveryTest(results), totals, counted: countResults(results), attempts: results.length };
}
