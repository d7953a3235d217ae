import { XMLParser, XMLValidator } from "fast-xml-parser";

/**
 * JUnit XML reports (`reports: [{ format: "junit", content }]`) parsed at the edge.
 *
 * One reader for the dialects people upload: Ant/Jenkins `<testsuites>` (suites may nest), a bare Surefire
 * `<testsuite>`, pytest, jest-junit, gotestsum (the ingestion spec, "JUnit XML"). Real samples of each, and
 * where they come from: test/fixtures/junit/.
 */

export interface ParsedTestResult {
  path: string;
  name: string;
  status: "pass" | "fail" | "skip";
  startedAt?: string;
  durationMs?: number;
  failureDetails?: string;
  rerunCount: number;
  suite?: string;
  metadata?: Record<string, unknown>;
}

export class JunitParseError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
    this.name = "JunitParseError";
  }
}

type XmlNode = Record<string, unknown>;

/** Elements that may repeat: always arrays, even when a document has just one. */
const REPEATABLE = new Set([
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
  "property",
]);

const BUILT_IN_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const ENTITY_REFERENCE = /&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|(amp|lt|gt|quot|apos));/g;

function decodeReference(match: string, decimal?: string, hex?: string, named?: string): string {
  if (named) return BUILT_IN_ENTITIES[named]!;
  const codePoint = decimal ? Number(decimal) : Number.parseInt(hex!, 16);
  const valid = codePoint > 0 && codePoint <= 0x10ffff && (codePoint < 0xd800 || codePoint > 0xdfff);
  return valid ? String.fromCodePoint(codePoint) : match;
}

/**
 * Entities: exactly what XML defines and nothing more. fast-xml-parser's own decoder only resolves numeric
 * references (`&#xA;`, which Surefire and Go write for every newline) together with the whole HTML entity
 * table, and it expands entities a DOCTYPE declares. This one decodes the five built-ins and numeric
 * references in a single pass (so `&amp;#10;` stays the text `&#10;`) and refuses every declared entity.
 * External (`SYSTEM`) entities are never fetched: the parser rejects them itself.
 */
const xmlEntitiesOnly = {
  setExternalEntities() {},
  setXmlVersion() {},
  reset() {},
  addInputEntities(entities: Record<string, string>) {
    // Reached only through the parser's DOCTYPE reader, which drops entities that reference other
    // entities (never expanded); anything it does hand over is refused.
    if (Object.keys(entities).length > 0)
      throw new JunitParseError("a DOCTYPE with entity declarations is not allowed");
  },
  decode: (text: string) => (text.includes("&") ? text.replace(ENTITY_REFERENCE, decodeReference) : text),
};

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  ignoreDeclaration: true,
  ignorePiTags: true,
  // Text stays text ("123" is not a number) and untrimmed, so CDATA and text pieces join as written.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  entityDecoder: xmlEntitiesOnly,
  isArray: (tagName, _jPath, _isLeaf, isAttribute) => !isAttribute && REPEATABLE.has(tagName),
});

/**
 * A report declaring entities is refused before any parser sees it (billion laughs and friends).
 * A DOCTYPE can only sit in the prolog, before the first element, so only that stretch is searched.
 */
function rejectEntityDeclarations(xml: string): void {
  const firstElement = /<[A-Za-z_:]/.exec(xml)?.index ?? xml.length;
  const doctype = xml.lastIndexOf("<!DOCTYPE", firstElement);
  if (doctype !== -1 && xml.slice(doctype, firstElement).includes("<!ENTITY")) {
    throw new JunitParseError("a DOCTYPE with entity declarations is not allowed");
  }
}

/** Children named `tag`; an element holding only text comes back from the parser as a bare string. */
function elements(node: XmlNode | undefined, tag: string): XmlNode[] {
  const value = node?.[tag];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((item) =>
    typeof item === "object" && item !== null ? (item as XmlNode) : { "#text": String(item) },
  );
}

/** A trimmed attribute value; empty counts as absent (gotestsum writes `classname=""` for TestMain). */
function attr(node: XmlNode | undefined, name: string): string | undefined {
  const value = node?.[`@${name}`];
  const trimmed = typeof value === "string" ? value.trim() : "";
  return trimmed === "" ? undefined : trimmed;
}

function text(node: XmlNode | undefined): string {
  const value = node?.["#text"];
  return typeof value === "string" ? value.trim() : "";
}

/** Seconds to whole milliseconds. Some writers group thousands ("1,000.025", a case junitparser tests for). */
function durationMs(time: string | undefined): number | undefined {
  if (time === undefined) return undefined;
  const plain = /^\d{1,3}(,\d{3})+(\.\d+)?$/.test(time) ? time.replaceAll(",", "") : time;
  const seconds = Number(plain);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.round(seconds * 1000) : undefined;
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * JUnit timestamps usually carry no zone (Ant, older pytest, jest-junit): they are taken as UTC.
 * Go's zero time (0001-01-01, written when a tool had no start time) and anything unparseable mean
 * "unknown", which the caller fills with the upload time.
 */
function startedAt(timestamp: string | undefined): string | undefined {
  const match = timestamp === undefined ? null : TIMESTAMP.exec(timestamp);
  if (!match) return undefined;
  const zone = (match[3] ?? "Z").replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
  const date = new Date(`${match[1]}T${match[2]}${zone}`);
  return Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1970 ? undefined : date.toISOString();
}

/** "message\n\nbody"; Surefire's flaky/rerun elements keep their body in a <stackTrace> child. */
function failureDetails(node: XmlNode | undefined): string | undefined {
  if (!node) return undefined;
  const parts = [attr(node, "message"), text(node), ...elements(node, "stackTrace").map(text)].filter(Boolean);
  return parts.length > 0 ? parts.join("\n\n") : undefined;
}

interface SuiteContext {
  name?: string;
  timestamp?: string;
}

interface Attempt {
  key: string;
  result: ParsedTestResult;
}

function readTestcase(testcase: XmlNode, suite: SuiteContext): Attempt {
  const classname = attr(testcase, "classname");
  const name = attr(testcase, "name") ?? "(unnamed)";
  const path = attr(testcase, "file") ?? classname ?? suite.name ?? "(unknown)";

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
    startedAt: startedAt(attr(testcase, "timestamp") ?? suite.timestamp),
    durationMs: durationMs(attr(testcase, "time")),
    failureDetails: failureDetails(problem ?? flaky.at(-1)),
    rerunCount: flaky.length + reruns.length,
    suite: classname,
    metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
  };
  // The classname is part of the key although not of the identity: pytest's `file` is where a test
  // function is defined, so two classes inheriting one test from a shared module give the same
  // (file, name) and must not be folded into one test with a rerun.
  return { key: JSON.stringify([path, classname ?? "", name]), result };
}

function visitSuite(node: XmlNode, outer: SuiteContext, out: Attempt[]): void {
  const context = { name: attr(node, "name") ?? outer.name, timestamp: attr(node, "timestamp") ?? outer.timestamp };
  for (const testcase of elements(node, "testcase")) out.push(readTestcase(testcase, context));
  for (const child of elements(node, "testsuite")) visitSuite(child, context, out);
}

/**
 * gotestsum --rerun-fails (and `go test -count`) write every attempt as its own testcase, in the order run.
 * They become one result: the last attempt's status, every earlier failure counted as a rerun.
 */
function fold(attempts: ParsedTestResult[]): ParsedTestResult {
  const last = attempts.at(-1)!;
  if (attempts.length === 1) return last;
  const earlierFailures = attempts.slice(0, -1).filter((a) => a.status === "fail").length;
  const durations = attempts.flatMap((a) => (a.durationMs === undefined ? [] : [a.durationMs]));
  return {
    ...last,
    startedAt: attempts.find((a) => a.startedAt)?.startedAt,
    durationMs: durations.length > 0 ? durations.reduce((sum, d) => sum + d, 0) : undefined,
    failureDetails:
      attempts.findLast((a) => a.status === "fail" && a.failureDetails)?.failureDetails ?? last.failureDetails,
    rerunCount: earlierFailures + attempts.reduce((sum, a) => sum + a.rerunCount, 0),
    metadata: { ...last.metadata, attempts: attempts.length },
  };
}

/** Parses one JUnit XML document; throws JunitParseError (with a line and column where known). */
export function parseJunit(xml: string): ParsedTestResult[] {
  rejectEntityDeclarations(xml);
  const validation = XMLValidator.validate(xml);
  if (validation !== true) {
    const { msg, line, col } = validation.err;
    throw new JunitParseError(`malformed XML at line ${line}${col ? `, column ${col}` : ""}: ${msg}`, line, col);
  }

  let document: XmlNode;
  try {
    document = parser.parse(xml) as XmlNode;
  } catch (error) {
    if (error instanceof JunitParseError) throw error;
    throw new JunitParseError(`malformed XML: ${error instanceof Error ? error.message : String(error)}`);
  }

  const roots = [...elements(document, "testsuites"), ...elements(document, "testsuite")];
  if (roots.length === 0) {
    const root = Object.keys(document).find((key) => !key.startsWith("#") && !key.startsWith("?")) ?? "";
    throw new JunitParseError(`not a JUnit report: the root element is <${root}>, not <testsuites> or <testsuite>`);
  }
  const attempts: Attempt[] = [];
  // <testsuites> is walked like a suite: some tools put its name or timestamp there and nowhere else.
  for (const root of roots) visitSuite(root, {}, attempts);
  if (attempts.length === 0) throw new JunitParseError("no test cases found");

  const byKey = new Map<string, ParsedTestResult[]>();
  for (const { key, result } of attempts) {
    const group = byKey.get(key);
    if (group) group.push(result);
    else byKey.set(key, [result]);
  }
  return [...byKey.values()].map(fold);
}
