/**
 * What every report parser returns, and the one error they throw. The mapping of each format onto these
 * shapes (identity, status, retries, totals) is documented in docs/report-formats.md.
 */

/** One test's result as parsed from a report: the `tests[]` item of the ingestion payload, without defaults. */
export interface ParsedTestResult {
  path: string;
  name: string;
  status: "pass" | "fail" | "skip";
  startedAt?: string;
  durationMs?: number;
  failureDetails?: string;
  /** Failed attempts before the final one (retries, reruns, Playwright/CTRF flaky evidence). */
  rerunCount: number;
  suite?: string;
  metadata?: Record<string, unknown>;
}

/** Counts in our terms (pass, fail, skip), as a report states or as they were counted from it. */
export interface ReportCounts {
  tests: number;
  passed: number;
  failed: number;
  skipped: number;
  /** Tests that failed and then passed (formats that say so: Playwright, CTRF). */
  flaky: number;
}

export interface ParsedReport {
  /** One result per test identity (path, name); no two share one. */
  results: ParsedTestResult[];
  /**
   * What the report itself claims, where it states it (JUnit's `tests`/`failures`/`errors`/`skipped`, jest's
   * `numTotalTests`…), mapped onto our statuses. A key the report does not state is absent.
   */
  totals: Partial<ReportCounts>;
  /**
   * The same quantities counted from the report's items the way the report counts them (JUnit counts every
   * `<testcase>`, so a folded retry still counts there). Where `totals` states a key, `counted` equals it
   * for a consistent report; the tests hold every fixture to that.
   */
  counted: Partial<ReportCounts>;
  /** Executions seen: the results plus every earlier attempt folded into them. */
  attempts: number;
}

/** Where a report broke: line/column for XML and NDJSON, a JSON path (and line/column when known) for JSON. */
export interface ParseLocation {
  line?: number;
  column?: number;
  /** Dotted path into a JSON document, e.g. `testResults.3.assertionResults`. */
  path?: string;
}

/**
 * A report that cannot be read. The message says where (it is shown to the client in a 400); `line`,
 * `column` and `path` carry the same location for callers that want it structured.
 */
export class ReportParseError extends Error {
  readonly line?: number;
  readonly column?: number;
  readonly path?: string;

  constructor(message: string, location: ParseLocation = {}) {
    super(message);
    this.name = "ReportParseError";
    this.line = location.line;
    this.column = location.column;
    this.path = location.path;
  }
}

/**
 * Items (testcases, assertion results, events' tests, attempts) a parser reads from one report before it
 * gives up with a ReportParseError. The caller keeps at most 10,000 results per upload; this bound only
 * keeps a hostile or runaway report from growing a parser's memory beyond the body it came in.
 */
export const MAX_REPORT_ITEMS = 50_000;

/** Lines of an NDJSON stream (go test -json, dart/flutter --machine) read before giving up. */
export const MAX_STREAM_LINES = 2_000_000;

/** Failure output kept per result while parsing (the stored value is cut to 10,000 characters later). */
export const MAX_DETAILS_CHARS = 16_000;
