import { parseJunitReport } from "./formats/junit";
import type { ParsedTestResult } from "./formats/types";

/**
 * The JUnit parser's original entry points, kept for existing callers. The parser itself lives with the
 * other report formats in ./formats/ (JUnit: ./formats/junit.ts).
 */

export type { ParsedTestResult } from "./formats/types";
export { ReportParseError as JunitParseError } from "./formats/types";

/** Parses one JUnit XML document into one result per test; throws JunitParseError (= ReportParseError). */
export function parseJunit(xml: string): ParsedTestResult[] {
  return parseJunitReport(xml).results;
}
