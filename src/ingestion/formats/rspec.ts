import {
  checkItemBudget,
  count,
  countResults,
  details,
  expectArray,
  expectObject,
  isObject,
  keepEveryTest,
  msFromSeconds,
  parseJson,
  relativePath,
  stated,
  text,
} from "./common";
import { type ParsedReport, type ParsedTestResult, ReportParseError } from "./types";

/**
 * RSpec's JSON formatter (`rspec --format json --out rspec.json`). Identity: the example's file and its
 * full description (the describe/context titles and its own). Mapping: docs/report-formats.md.
 */

const STATUSES: Record<string, ParsedTestResult["status"]> = { passed: "pass", failed: "fail", pending: "skip" };

export function parseRspecReport(content: string): ParsedReport {
  const report = expectObject(parseJson(content, "RSpec"), "", "RSpec JSON");
  const examples = expectArray(report.examples, "examples", "RSpec JSON");
  checkItemBudget(examples.length, "examples", { path: "examples" });
  const results = examples.map((value, index): ParsedTestResult => {
    const path = `examples.${index}`;
    const example = expectObject(value, path, "RSpec JSON");
    const status = STATUSES[String(example.status)];
    if (!status) {
      throw new ReportParseError(`RSpec JSON: ${path}.status must be passed, failed or pending`, {
        path: `${path}.status`,
      });
    }
    const exception = isObject(example.exception) ? example.exception : undefined;
    const backtrace = Array.isArray(exception?.backtrace)
      ? exception.backtrace.filter((frame): frame is string => typeof frame === "string").join("\n")
      : undefined;
    const pendingMessage = text(example.pending_message);
    return {
      path: relativePath(text(example.file_path) ?? "(unknown)"),
      name: text(example.full_description) ?? text(example.description) ?? text(example.id) ?? "(undescribed)",
      status,
      durationMs: msFromSeconds(example.run_time),
      failureDetails:
        status === "fail" ? details(text(exception?.class), text(exception?.message), backtrace) : undefined,
      rerunCount: 0,
      metadata: pendingMessage ? { pendingMessage } : undefined,
    };
  });
  if (results.length === 0) throw new ReportParseError("RSpec JSON: no examples found", { path: "examples" });
  const summary = isObject(report.summary) ? report.summary : {};
  const tests = count(summary.example_count);
  const failed = count(summary.failure_count);
  const skipped = count(summary.pending_count);
  const passed =
    tests !== undefined && failed !== undefined && skipped !== undefined ? tests - failed - skipped : undefined;
  return {
    results: keepEveryTest(results),
    totals: stated({ tests, passed, failed, skipped }),
    counted: countResults(results),
    attempts: results.length,
  };
}
