import {
  MAX_DETAILS_CHARS,
  MAX_REPORT_ITEMS,
  MAX_STREAM_LINES,
  type ParsedTestResult,
  type ReportCounts,
  ReportParseError,
} from "./types";

/**
 * Helpers shared by the report parsers. Everything here runs in workerd (no Node APIs), and every regular
 * expression that touches report content is linear: no nested or adjacent overlapping quantifiers.
 */

export type Status = ParsedTestResult["status"];

/** Whole milliseconds from seconds, given as a number or a numeric string; anything else is "unknown". */
export function msFromSeconds(value: unknown): number | undefined {
  const seconds = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return undefined;
  return Math.round(seconds * 1000);
}

/** Whole milliseconds from a millisecond count; negative, non-finite or absurd values are "unknown". */
export function msFromMs(value: unknown): number | undefined {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 2_147_483_647) return undefined;
  return Math.round(value);
}

/** An ISO instant from epoch milliseconds, or undefined when the number is not a plausible time. */
export function isoFromEpochMs(value: unknown): string | undefined {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 8.64e15) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * An ISO instant from a report's timestamp text. A timestamp without a zone (Ant, older pytest, jest-junit)
 * is taken as UTC; fractions beyond milliseconds (.NET writes 7 digits) are cut. Go's zero time and
 * anything before 1970 or unparseable is "unknown", which the caller fills with the upload time.
 */
export function isoFromText(text: unknown): string | undefined {
  if (typeof text !== "string" || text.length > 64) return undefined;
  const match = TIMESTAMP.exec(text.trim());
  if (!match) return undefined;
  const zone = (match[3] ?? "Z").replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
  const time = match[2]!.replace(/(\.\d{3})\d+$/, "$1");
  const date = new Date(`${match[1]}T${time}${zone}`);
  return Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1970 ? undefined : date.toISOString();
}

/** Text kept for failure details: trimmed, cut to a bound (the stored value is cut again, and redacted, later). */
export function details(...parts: unknown[]): string | undefined {
  const kept = parts.filter((part): part is string => typeof part === "string" && part.trim() !== "");
  if (kept.length === 0) return undefined;
  const joined = kept.map((part) => part.trim()).join("\n\n");
  return joined.length > MAX_DETAILS_CHARS ? keepHead(joined, MAX_DETAILS_CHARS) : joined;
}

/**
 * Output is cut before it is redacted, so a cut must not leave half a token that no redaction rule would
 * recognise: the partial word at the cut (up to 512 characters of it) is dropped as well.
 */
export function keepHead(value: string, max: number): string {
  const head = value.slice(0, max);
  for (let at = head.length - 1; at >= Math.max(0, head.length - 513); at--) {
    if (/\s/.test(head[at] as string)) return head.slice(0, at);
  }
  return head.slice(0, Math.max(0, max - 512));
}

/** The end of `value`, at most `max` characters, without the partial word at the cut. */
export function keepTail(value: string, max: number): string {
  const tail = value.slice(-max);
  for (let at = 0; at < Math.min(tail.length, 513); at++) {
    if (/\s/.test(tail[at] as string)) return tail.slice(at + 1);
  }
  return tail.slice(512);
}

/** A non-empty trimmed string, or undefined. */
export function text(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

/**
 * CI workspaces whose absolute prefix is not part of a test's identity: a path written on a GitHub runner
 * and one written on a laptop name the same test once the checkout directory is cut. Each pattern is
 * anchored and made of negated classes, so matching is linear.
 */
const WORKSPACE_PREFIXES = [
  /^\/home\/runner\/work\/[^/]+\/[^/]+\//, // GitHub Actions, Linux
  /^\/Users\/runner\/work\/[^/]+\/[^/]+\//, // GitHub Actions, macOS
  /^[A-Za-z]:\\a\\[^\\]+\\[^\\]+\\/, // GitHub Actions, Windows
  /^\/github\/workspace\//, // GitHub Actions container actions
  /^\/__w\/[^/]+\/[^/]+\//, // GitHub Actions jobs in a container
  /^\/home\/circleci\/(?:project|repo)\//, // CircleCI
  /^\/builds\/[^/]+\/[^/]+\//, // GitLab CI (default CI_BUILDS_DIR)
  /^\/var\/lib\/buildkite-agent\/builds\/[^/]+\/[^/]+\/[^/]+\//, // Buildkite
  /^\/(?:var\/jenkins_home|var\/lib\/jenkins|home\/jenkins(?:\/agent)?)\/workspace\/[^/]+\//, // Jenkins
];

/**
 * A test file's path as an identity: relative to `rootDir` when the report (or caller) names it, else with a
 * known CI workspace prefix cut; a leading `./` is dropped.
 */
export function relativePath(path: string, rootDir?: string): string {
  let relative = path.trim();
  if (rootDir) {
    const root = rootDir.endsWith("/") || rootDir.endsWith("\\") ? rootDir : `${rootDir}/`;
    const windowsRoot = root.replace(/\/$/, "\\");
    if (relative.startsWith(root)) relative = relative.slice(root.length);
    else if (relative.startsWith(windowsRoot)) relative = relative.slice(windowsRoot.length);
  }
  for (const prefix of WORKSPACE_PREFIXES) {
    const match = prefix.exec(relative);
    if (match) {
      relative = relative.slice(match[0].length);
      break;
    }
  }
  if (relative.startsWith("./")) relative = relative.slice(2);
  return relative === "" ? path : relative;
}

/** Counts results by status, in ReportCounts' terms. */
export function countResults(results: readonly Pick<ParsedTestResult, "status">[]): ReportCounts {
  const counts = { tests: results.length, passed: 0, failed: 0, skipped: 0, flaky: 0 };
  for (const result of results) {
    if (result.status === "pass") counts.passed++;
    else if (result.status === "fail") counts.failed++;
    else counts.skipped++;
  }
  return counts;
}

/** A whole non-negative number from a report's own count (a number, or text as XML attributes are). */
export function count(value: unknown): number | undefined {
  const number = typeof value === "string" && /^\s*\d{1,9}\s*$/.test(value) ? Number(value) : value;
  return typeof number === "number" && Number.isInteger(number) && number >= 0 ? number : undefined;
}

/** Keeps only the keys a report stated. */
export function stated(counts: { [K in keyof ReportCounts]?: number | undefined }): Partial<ReportCounts> {
  const out: Partial<ReportCounts> = {};
  for (const [key, value] of Object.entries(counts) as [keyof ReportCounts, number | undefined][]) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Adds counts a report states in parts (JUnit's failures + errors); undefined when no part is stated. */
export function sum(...parts: (number | undefined)[]): number | undefined {
  return parts.some((part) => part !== undefined)
    ? parts.reduce<number>((total, part) => total + (part ?? 0), 0)
    : undefined;
}

/** Throws once a parser has read more items than any report may hold. */
export function checkItemBudget(items: number, what: string, location?: { line?: number; path?: string }): void {
  if (items > MAX_REPORT_ITEMS) {
    throw new ReportParseError(
      `the report holds more than ${MAX_REPORT_ITEMS.toLocaleString("en-US")} ${what}; split it into smaller reports`,
      location,
    );
  }
}

/**
 * Attempts of one test, in the order they ran, become one result: the last attempt's status, every earlier
 * failed attempt (and every attempt an item already folded) counted as a rerun, durations summed, the last
 * failure's details kept (for a flaky pass, they explain the flake).
 */
export function foldAttempts(
  attempts: ParsedTestResult[],
  earlierCountsAsRerun = (a: ParsedTestResult) => a.status === "fail",
): ParsedTestResult {
  const last = attempts.at(-1)!;
  if (attempts.length === 1) return last;
  const earlier = attempts.slice(0, -1);
  const durations = attempts.flatMap((a) => (a.durationMs === undefined ? [] : [a.durationMs]));
  return {
    ...last,
    startedAt: attempts.find((a) => a.startedAt)?.startedAt,
    durationMs: durations.length > 0 ? durations.reduce((total, d) => total + d, 0) : undefined,
    failureDetails:
      attempts.findLast((a) => a.status === "fail" && a.failureDetails)?.failureDetails ?? last.failureDetails,
    rerunCount: earlier.filter(earlierCountsAsRerun).length + attempts.reduce((total, a) => total + a.rerunCount, 0),
    metadata: { ...last.metadata, attempts: attempts.length },
  };
}

/**
 * Same-identity results that are distinct tests (jest's same-titled tests, TestNG data-provider
 * invocations, RSpec's repeated descriptions): the first keeps its name, the k-th becomes `name [#k]`, with
 * `metadata.invocation` saying which it was. Their order in the report decides k.
 */
export function distinctInvocations(group: ParsedTestResult[]): ParsedTestResult[] {
  if (group.length === 1) return group;
  return group.map((result, index) =>
    index === 0
      ? { ...result, metadata: { ...result.metadata, invocation: 1 } }
      : { ...result, name: `${result.name} [#${index + 1}]`, metadata: { ...result.metadata, invocation: index + 1 } },
  );
}

/** Groups results by identity (path, name), keeping first-seen order of the groups and of each group. */
export function groupByIdentity<T extends { path: string; name: string }>(items: T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = `${item.path}\u0000${item.name}`;
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()];
}

/** Results of a format whose repeated identities are distinct tests: every one kept, made unique. */
export function keepEveryTest(results: ParsedTestResult[]): ParsedTestResult[] {
  return groupByIdentity(results).flatMap(distinctInvocations);
}

/** The line and column (1-based) of a character offset. */
export function lineColumnAt(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(offset, 0), source.length);
  for (let i = source.indexOf("\n"); i !== -1 && i < end; i = source.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: end - lineStart + 1 };
}

/** Drops a UTF-8 byte order mark, which Windows tools write and JSON.parse refuses. */
export function stripBom(content: string): string {
  return content.charCodeAt(0) === 0xfeff ? content.slice(1) : content;
}

/**
 * JSON.parse with the position of a syntax error turned into a line and column. V8 says "… in JSON at
 * position N (line L column C)" (older versions without the line); both are read.
 */
export function parseJson(content: string, label: string): unknown {
  const source = stripBom(content);
  try {
    return JSON.parse(source);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const lineColumn = /\(line (\d+) column (\d+)\)/.exec(message);
    const position = /at position (\d+)/.exec(message);
    const location = lineColumn
      ? { line: Number(lineColumn[1]), column: Number(lineColumn[2]) }
      : position
        ? lineColumnAt(source, Number(position[1]))
        : lineColumnAt(source, source.length);
    const reason = message.replace(/\s*\(line \d+ column \d+\)/, "").replace(/ in JSON at position \d+/, "");
    throw new ReportParseError(
      `malformed ${label} JSON at line ${location.line}, column ${location.column}: ${reason}`,
      location,
    );
  }
}

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The object at `path`, or a ReportParseError naming the path. */
export function expectObject(value: unknown, path: string, label: string): JsonObject {
  if (!isObject(value)) throw new ReportParseError(`${label}: ${path || "the document"} must be an object`, { path });
  return value;
}

/** The array at `path`, or a ReportParseError naming the path; absent (undefined) is an empty array when allowed. */
export function expectArray(value: unknown, path: string, label: string, optional = false): unknown[] {
  if (value === undefined && optional) return [];
  if (!Array.isArray(value)) throw new ReportParseError(`${label}: ${path} must be an array`, { path });
  return value;
}

/** A required non-empty string at `path`. */
export function expectString(value: unknown, path: string, label: string): string {
  const found = text(value);
  if (found === undefined) throw new ReportParseError(`${label}: ${path} must be a non-empty string`, { path });
  return found;
}

/**
 * The lines of an NDJSON stream (go test -json, dart/flutter --machine), with their 1-based numbers; blank
 * lines are skipped. Reads with indexOf, so a stream is walked once whatever its line lengths.
 */
export function* ndjsonLines(content: string): Generator<{ line: string; number: number }> {
  const source = stripBom(content);
  let number = 0;
  let start = 0;
  while (start <= source.length) {
    const end = source.indexOf("\n", start);
    const stop = end === -1 ? source.length : end;
    number++;
    if (number > MAX_STREAM_LINES) {
      throw new ReportParseError(`the stream has more than ${MAX_STREAM_LINES.toLocaleString("en-US")} lines`, {
        line: number,
      });
    }
    const line = source.slice(start, stop).trim();
    if (line !== "") yield { line, number };
    if (end === -1) break;
    start = end + 1;
  }
}

/** One NDJSON line as an object, or a ReportParseError at that line. */
export function parseJsonLine(line: string, number: number, label: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /at position (\d+)/.exec(message);
    const column = position ? Number(position[1]) + 1 : undefined;
    const reason = message.replace(/\s*\(line \d+ column \d+\)/, "").replace(/ in JSON at position \d+/, "");
    throw new ReportParseError(
      `malformed ${label} event at line ${number}${column ? `, column ${column}` : ""}: ${reason}`,
      { line: number, column },
    );
  }
  if (!isObject(value)) {
    throw new ReportParseError(`malformed ${label} event at line ${number}: not a JSON object`, { line: number });
  }
  return value;
}
