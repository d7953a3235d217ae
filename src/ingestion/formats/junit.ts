import {
  checkItemBudget,
  count,
  distinctInvocations,
  foldAttempts,
  groupByIdentity,
  isoFromText,
  msFromSeconds,
  relativePath,
  stated,
  sum,
} from "./common";
import { type ParsedReport, type ParsedTestResult, type ReportCounts, ReportParseError } from "./types";
import { attr, elements, rootName, textOf, type XmlNode, xmlReader } from "./xml";

/**
 * JUnit XML, every dialect of it: Ant/Jenkins `<testsuites>` (suites may nest), bare Surefire/Failsafe and
 * Gradle `<testsuite>`s, TestNG's junitreports, pytest, unittest-xml-reporting, jest-junit, PHPUnit,
 * xcpretty, gotestsum, bun. Real samples of each, and where they come from: test/fixtures/junit/.
 *
 * Identity, and what repeated testcases mean for each producer, are documented in
 * docs/report-formats.md ("JUnit XML").
 */

const readXml = xmlReader([
  "testsuites",
  "testsuite",
  "testcase",
  "failure",
  "error",
  "skipped",
  "flakyFailure",
  "flakyError",
  "rerunFailure",
  "rerunError",
  "stackTrace",
  "property",
]);

/** Seconds to whole milliseconds. Some writers group thousands ("1,000.025", a case junitparser tests for). */
function durationMs(time: string | undefined): number | undefined {
  if (time === undefined) return undefined;
  return msFromSeconds(/^\d{1,3}(,\d{3})+(\.\d+)?$/.test(time) ? time.replaceAll(",", "") : time);
}

/** "message\n\nbody"; Surefire's flaky/rerun elements keep their body in a <stackTrace> child. */
function failureDetails(node: XmlNode | undefined): string | undefined {
  if (!node) return undefined;
  const parts = [attr(node, "message"), textOf(node), ...elements(node, "stackTrace").map(textOf)].filter(Boolean);
  return parts.length > 0 ? parts.join("\n\n") : undefined;
}

/**
 * Which tool wrote the report decides what a repeated testcase means (see the module comment):
 *  - `testng`: TestNG writes every data-provider invocation as its own testcase, and a retried attempt as a
 *    bare `<skipped/>` next to the final attempt, in no particular order;
 *  - `jest`: jest-junit (and the junit reporters of vitest and bun) write one testcase per test, so same-titled testcases
 *    are distinct tests;
 *  - `ordered`: everyone else who repeats a testcase (gotestsum --rerun-fails, Gradle's test-retry plugin,
 *    Xcode's test repetitions, `go test -count`) writes the attempts of one test in the order they ran.
 */
type Producer = "testng" | "jest" | "ordered";

function producerOf(xml: string, roots: XmlNode[]): Producer {
  const rootName = attr(roots[0], "name");
  if (rootName === "jest tests" || rootName === "vitest tests" || rootName === "bun test") return "jest";
  // Every TestNG stack trace runs through org.testng (and its reporter says so in a comment).
  if (xml.includes("org.testng.")) return "testng";
  return "ordered";
}

const TEST_FILE_EXTENSIONS = new Set(
  "js jsx mjs cjs ts tsx mts cts vue svelte py rb php phpt go dart swift kt kts java scala groovy cs fs vb rs ex exs feature".split(
    " ",
  ),
);

/** Whether a suite name is a test file's path (jest-junit's default suite name is the file). */
function namesAFile(name: string | undefined): name is string {
  if (name === undefined || name.length > 1000 || /\s/.test(name)) return false;
  const dot = name.lastIndexOf(".");
  const base = Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1;
  return dot > base && TEST_FILE_EXTENSIONS.has(name.slice(dot + 1).toLowerCase());
}

/** A file attribute worth using: unittest-xml-reporting writes `file=".py"` on its suites. */
function usableFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  const base = Math.max(file.lastIndexOf("/"), file.lastIndexOf("\\")) + 1;
  return file.lastIndexOf(".") > base || !file.slice(base).includes(".") ? file : undefined;
}

/**
 * What a classname adds to a name once the path is a file: nothing when the name already starts with it
 * (jest-junit's default templates) or when it is the file's own module (pytest's `tests.test_lib` for
 * tests/test_lib.py, Java's `com.acme.FooTest` for …/com/acme/FooTest.java); the class part when it is
 * module plus class (`tests.test_lib.TestApi` gives `TestApi`); else the whole classname.
 */
function qualifier(classname: string, path: string, name: string): string | undefined {
  if (name === classname || name.startsWith(`${classname} `)) return undefined;
  const dot = path.lastIndexOf(".");
  const modulePath = dot > Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) ? path.slice(0, dot) : path;
  const segments = modulePath.split(/[/\\]/).filter(Boolean);
  for (let start = 0; start < segments.length; start++) {
    const module = segments.slice(start).join(".");
    if (classname === module) return undefined;
    if (classname.startsWith(`${module}.`)) return classname.slice(module.length + 1);
  }
  return classname;
}

interface SuiteContext {
  name?: string;
  file?: string;
  timestamp?: string;
}

interface Attempt {
  result: ParsedTestResult;
  /** A `<skipped/>` with neither message nor text: how TestNG writes an attempt it retried. */
  bareSkip: boolean;
  /** Surefire flakyFailure, rerunFailure and the like: failed attempts inside the one testcase. */
  innerAttempts: number;
}

function readTestcase(testcase: XmlNode, suite: SuiteContext, separator: string): Attempt {
  const classname = attr(testcase, "classname");
  const rawName = attr(testcase, "name") ?? "(unnamed)";
  // Identity, in order: the testcase's file, the suite's file (or a suite named after its file), a
  // non-empty classname, the suite name. With a file as path the classname still tells tests apart (two
  // classes in one file, describe blocks in one jest file), so it qualifies the name.
  const file = usableFile(attr(testcase, "file")) ?? suite.file ?? (namesAFile(suite.name) ? suite.name : undefined);
  let path: string;
  let name = rawName;
  if (file !== undefined) {
    path = relativePath(file);
    const extra = classname === undefined ? undefined : qualifier(classname, path, rawName);
    if (extra !== undefined) name = `${extra}${separator}${rawName}`;
  } else {
    path = classname ?? suite.name ?? "(unknown)";
  }

  const failure = elements(testcase, "failure")[0];
  const error = elements(testcase, "error")[0];
  const problem = failure ?? error;
  const skipped = elements(testcase, "skipped")[0];
  // Surefire with rerunFailingTestsCount: flaky* = failed attempts before a pass, rerun* = failed attempts
  // after the first failure. Either way, each is one failed attempt before the final one.
  const flaky = [...elements(testcase, "flakyFailure"), ...elements(testcase, "flakyError")];
  const reruns = [...elements(testcase, "rerunFailure"), ...elements(testcase, "rerunError")];

  // A failure beats a skip: pytest reports an error in teardown next to the <skipped> of the test itself.
  const status = problem ? "fail" : skipped ? "skip" : "pass";
  const metadata: Record<string, unknown> = {};
  if (problem) {
    metadata.failureKind = failure ? "failure" : "error";
    const type = attr(problem, "type");
    if (type) metadata.failureType = type;
  }
  if (status === "skip" && attr(skipped, "type") === "pytest.xfail") metadata.xfail = true;

  const result: ParsedTestResult = {
    path,
    name,
    status,
    startedAt: isoFromText(attr(testcase, "timestamp") ?? suite.timestamp),
    durationMs: durationMs(attr(testcase, "time")),
    failureDetails: failureDetails(problem ?? flaky.at(-1)),
    rerunCount: flaky.length + reruns.length,
    suite: classname,
    metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
  };
  const bareSkip = status === "skip" && attr(skipped, "message") === undefined && textOf(skipped) === "";
  return { result, bareSkip, innerAttempts: flaky.length + reruns.length };
}

function visitSuite(node: XmlNode, outer: SuiteContext, separator: string, out: Attempt[]): void {
  const context: SuiteContext = {
    name: attr(node, "name") ?? outer.name,
    file: usableFile(attr(node, "file")) ?? outer.file,
    timestamp: attr(node, "timestamp") ?? outer.timestamp,
  };
  for (const testcase of elements(node, "testcase")) {
    out.push(readTestcase(testcase, context, separator));
    checkItemBudget(out.length, "testcases");
  }
  for (const child of elements(node, "testsuite")) visitSuite(child, context, separator, out);
}

/** A TestNG retry: the retried attempts are bare skips, the one other testcase is the final attempt. */
function foldTestngRetry(group: Attempt[]): ParsedTestResult {
  const final = group.find((a) => a.result.status !== "skip")!.result;
  const durations = group.flatMap((a) => (a.result.durationMs === undefined ? [] : [a.result.durationMs]));
  return {
    ...final,
    durationMs: durations.length > 0 ? durations.reduce((total, d) => total + d, 0) : undefined,
    rerunCount: group.length - 1 + final.rerunCount,
    metadata: { ...final.metadata, attempts: group.length },
  };
}

function resolveRepeats(group: Attempt[], producer: Producer): ParsedTestResult[] {
  const results = group.map((a) => a.result);
  if (group.length === 1) return results;
  if (producer === "jest") return distinctInvocations(results);
  if (producer === "testng") {
    const finals = group.filter((a) => a.result.status !== "skip");
    const retried = finals.length === 1 && group.every((a) => a.result.status !== "skip" || a.bareSkip);
    return retried ? [foldTestngRetry(group)] : distinctInvocations(results);
  }
  return [foldAttempts(results)];
}

/** What the report says it holds: the root `<testsuites>`'s counters, else the sum of its top-level suites'. */
function reportTotals(roots: XmlNode[]): Partial<ReportCounts> {
  const stating = (node: XmlNode) => count(attr(node, "tests")) !== undefined;
  let counters: XmlNode[] = roots.filter(stating);
  if (counters.length < roots.length) {
    const suites = roots.flatMap((root) => (stating(root) ? [root] : elements(root, "testsuite")));
    counters = suites.length > 0 && suites.every(stating) ? suites : [];
  }
  if (counters.length === 0) return {};
  const total = (name: string) => sum(...counters.map((node) => count(attr(node, name))));
  const tests = total("tests");
  const failed = sum(total("failures"), total("errors"));
  const skipped = total("skipped") ?? total("skips");
  const passed =
    tests !== undefined && failed !== undefined && skipped !== undefined ? tests - failed - skipped : undefined;
  return stated({ tests, failed, skipped, passed });
}

/** Parses one JUnit XML document; throws ReportParseError (with a line and column where known). */
export function parseJunitReport(xml: string): ParsedReport {
  const document = readXml(xml);
  const roots = [...elements(document, "testsuites"), ...elements(document, "testsuite")];
  if (roots.length === 0) {
    throw new ReportParseError(
      `not a JUnit report: the root element is <${rootName(document)}>, not <testsuites> or <testsuite>`,
    );
  }
  const producer = producerOf(xml, roots);
  // jest's own full test name joins describe titles and the title with a space; elsewhere `Class::test`.
  const separator = producer === "jest" ? " " : "::";
  const attempts: Attempt[] = [];
  // <testsuites> is walked like a suite: some tools put its name or timestamp there and nowhere else.
  for (const root of roots) visitSuite(root, {}, separator, attempts);
  if (attempts.length === 0) throw new ReportParseError("no test cases found");

  const counted = { tests: attempts.length, passed: 0, failed: 0, skipped: 0 };
  for (const { result } of attempts) {
    if (result.status === "pass") counted.passed++;
    else if (result.status === "fail") counted.failed++;
    else counted.skipped++;
  }
  const results = groupByIdentity(attempts.map((a) => ({ ...a, path: a.result.path, name: a.result.name }))).flatMap(
    (group) => resolveRepeats(group, producer),
  );
  return {
    results,
    totals: reportTotals(roots),
    counted,
    attempts: attempts.length + attempts.reduce((total, a) => total + a.innerAttempts, 0),
  };
}
