import { parseCtrfReport } from "./ctrf";
import { parseDartReport } from "./dart";
import { REPORT_FORMATS, type ReportFormat, resolveFormat } from "./detect";
import { parseNunitReport, parseTrxReport } from "./dotnet";
import { parseGoTestReport } from "./go";
import { parseJestReport, parseMochaReport, parsePlaywrightReport } from "./javascript";
import { parseJunitReport } from "./junit";
import { parsePytestJsonReport } from "./pytest";
import { parseRspecReport } from "./rspec";
import { type ParsedReport, ReportParseError } from "./types";

/**
 * The report formats accepted in `reports: [{ format, content }]` and their parsers. The names and
 * detection by content (for the uploader) are in ./detect.ts and re-exported here. Nothing here uses Node or
 * Workers APIs. Every format, its CI command and its mapping onto test results: docs/report-formats.md.
 */

const PARSERS: Record<ReportFormat, (content: string) => ParsedReport> = {
  junit: parseJunitReport,
  trx: parseTrxReport,
  nunit: parseNunitReport,
  "jest-json": parseJestReport,
  "mocha-json": parseMochaReport,
  "playwright-json": parsePlaywrightReport,
  "pytest-json": parsePytestJsonReport,
  "go-test-json": parseGoTestReport,
  "rspec-json": parseRspecReport,
  "dart-json": parseDartReport,
  ctrf: parseCtrfReport,
};

/**
 * Parses one report. Throws ReportParseError, and nothing else, for anything wrong with the content: its
 * message says where the report broke (line/column or JSON path) and is fit for a 400.
 */
export function parseReport(format: ReportFormat | string, content: string): ParsedReport {
  const resolved = resolveFormat(format);
  if (resolved === null) {
    throw new ReportParseError(`unknown report format "${format}"; expected one of ${REPORT_FORMATS.join(", ")}`);
  }
  try {
    return PARSERS[resolved](content);
  } catch (error) {
    if (error instanceof ReportParseError) throw error;
    // A parser bug must not become a 500 for the client's report; it is still a report we cannot read.
    // (A RangeError here is a call stack exhausted by absurd nesting.)
    if (error instanceof RangeError) throw new ReportParseError(`the ${resolved} report is nested too deeply`);
    if (error instanceof TypeError)
      throw new ReportParseError(`could not read the ${resolved} report: ${error.message}`);
    throw error;
  }
}

export {
  DETECTION_WINDOW,
  detectFormat,
  FORMAT_ALIASES,
  isReportFormat,
  REPORT_FORMATS,
  type ReportFormat,
  resolveFormat,
} from "./detect";
export type { ParsedReport, ParsedTestResult, ParseLocation, ReportCounts } from "./types";
export { MAX_DETAILS_CHARS, MAX_REPORT_ITEMS, MAX_STREAM_LINES, ReportParseError } from "./types";
