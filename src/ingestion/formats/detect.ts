/**
 * The report format names and detection by content, apart from the parsers: the uploader can label a
 * folder of mixed reports with this module without bundling a parser (no fast-xml-parser, no Node APIs).
 * Every format, its CI command and its mapping: docs/report-formats.md.
 */
import type { ReportFormat } from "../../contract/ingestion.ts";

// The names belong to the wire contract; detection lives here, beside the parsers.
export {
  FORMAT_ALIASES,
  isReportFormat,
  REPORT_FORMATS,
  type ReportFormat,
  resolveFormat,
} from "../../contract/ingestion.ts";

/** How much of a report detection looks at. */
export const DETECTION_WINDOW = 4096;

/** The first element's name, skipping the XML declaration, processing instructions, comments and DOCTYPE. */
function xmlRoot(head: string): string | null {
  let at = 0;
  while (at < head.length) {
    const open = head.indexOf("<", at);
    if (open === -1) return null;
    const close = head.startsWith("<?", open)
      ? "?>"
      : head.startsWith("<!--", open)
        ? "-->"
        : head.startsWith("<!", open)
          ? ">"
          : null;
    if (close === null) {
      const match = /^<([A-Za-z_][\w.:-]{0,100})/.exec(head.slice(open, open + 104));
      return match ? match[1]!.replace(/^[\w.-]{1,50}:/, "") : null;
    }
    const end = head.indexOf(close, open + 2);
    if (end === -1) return null; // a declaration or comment longer than the window
    at = end + close.length;
  }
  return null;
}

/** The format of an NDJSON stream, judged by its first event; null when the head holds no event. */
function streamFormat(head: string): ReportFormat | null {
  for (const line of head.split("\n").slice(0, 50)) {
    const trimmed = line.trim();
    if (!trimmed.startsWith("{")) continue;
    let event: unknown;
    try {
      event = JSON.parse(trimmed);
    } catch {
      return null; // a line cut by the window, or not NDJSON at all
    }
    if (typeof event !== "object" || event === null) return null;
    if ("Action" in event && ("Package" in event || "Time" in event)) return "go-test-json";
    if ("type" in event && ("protocolVersion" in event || "time" in event)) return "dart-json";
    return null;
  }
  return null;
}

/**
 * The format of a report, judged from its first few KB; null when it is none we read. Cheap enough to run
 * on every file of a folder: it looks at `DETECTION_WINDOW` characters and never parses a whole document.
 */
export function detectFormat(content: string): ReportFormat | null {
  const head = content.slice(0, DETECTION_WINDOW).replace(/^\uFEFF/, "");
  const start = head.trimStart();
  if (start.startsWith("<")) {
    const root = xmlRoot(start);
    if (root === "testsuites" || root === "testsuite") return "junit";
    if (root === "TestRun") return "trx";
    if (root === "test-run" || root === "test-results") return "nunit";
    return null;
  }
  // NDJSON first: its first line is a whole object, which would also pass the single-document sniffs below.
  const stream = streamFormat(head);
  if (stream) return stream;
  if (!start.startsWith("{")) return null;
  const has = (key: string) => head.includes(`"${key}"`);
  if (/"reportFormat"\s*:\s*"CTRF"/.test(head) || (has("results") && has("tool") && has("summary"))) return "ctrf";
  if (has("numTotalTests") || has("numFailedTestSuites") || has("assertionResults")) return "jest-json";
  if (has("config") && (has("forbidOnly") || has("fullyParallel") || has("projects")) && !has("numTotalTests")) {
    return "playwright-json";
  }
  if (has("stats") && has("passes") && (has("pending") || has("failures"))) return "mocha-json";
  if (has("examples") && (has("summary_line") || has("full_description") || has("example_count"))) return "rspec-json";
  if (has("nodeid") || (has("created") && has("exitcode"))) return "pytest-json";
  if (has("stats") && has("suites") && (has("specs") || has("expected"))) return "playwright-json";
  return null;
}
