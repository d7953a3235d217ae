import {
  type IssueDetail,
  issueDetails,
  LIMITS,
  type Payload,
  resultsSchema,
  startedAtMs,
} from "../contract/ingestion";
import { parseReport, ReportParseError } from "./formats";
import { redactAndCap } from "./redact";

/** One test result as it will be stored: validated, redacted, with every default filled in. */
export interface NormalizedResult {
  path: string;
  name: string;
  status: "pass" | "fail" | "skip";
  startedAt: string;
  durationMs: number | null;
  failureDetails: string | null;
  tags: string[];
  metadata: Record<string, unknown> | null;
  rerunCount: number;
  suite: string | null;
}

export type Normalized = { ok: true; results: NormalizedResult[] } | { ok: false; details: IssueDetail[] };

/** A timestamp without a zone is taken as UTC; every stored timestamp is ISO with Z. */
function isoUtc(value: string): string {
  return new Date(startedAtMs(value)).toISOString();
}

/** Results that claim to start more than a day after `now` (CI clocks may be off, not that far). */
export function futureStartIssues(
  results: { startedAt: string }[],
  now: Date,
  prefix: (string | number)[],
): IssueDetail[] {
  const limit = now.getTime() + LIMITS.futureStartMs;
  return results
    .flatMap((result, index) => (startedAtMs(result.startedAt) > limit ? [index] : []))
    .slice(0, 50)
    .map((index) => ({
      path: [...prefix, index, "startedAt"].join("."),
      message: "must not be more than a day in the future",
    }));
}

/**
 * Turns `tests`, or the results parsed out of `reports`, into stored results.
 * Parsed results are held to the same rules as JSON ones (lengths, dates),
 * except that long failure output is cut rather than refused.
 */
export function normalizeResults(payload: Payload, now: Date): Normalized {
  let results = payload.tests;
  // Failure output of parsed reports is redacted (and cut) before validation; that of JSON results here.
  const redacted = !results;
  if (!results) {
    const parsed = [];
    for (const [index, report] of (payload.reports ?? []).entries()) {
      try {
        for (const result of parseReport(report.format, report.content).results) {
          parsed.push({
            path: result.path,
            name: result.name,
            status: result.status,
            rerunCount: result.rerunCount,
            suite: result.suite,
            metadata: result.metadata,
            startedAt: result.startedAt ?? now.toISOString(),
            // A duration a report writer got wrong (negative, or beyond the int column) is unknown, not an error.
            durationMs:
              result.durationMs !== undefined && result.durationMs <= LIMITS.maxDurationMs
                ? result.durationMs
                : undefined,
            failureDetails:
              result.failureDetails === undefined
                ? undefined
                : redactAndCap(result.failureDetails, LIMITS.failureDetailsChars),
          });
        }
      } catch (error) {
        if (!(error instanceof ReportParseError)) throw error;
        return { ok: false, details: [{ path: `reports.${index}.content`, message: whereItBroke(error) }] };
      }
    }
    if (parsed.length > LIMITS.results) {
      return {
        ok: false,
        details: [
          {
            path: "reports",
            message: `the reports hold ${parsed.length} results; at most ${LIMITS.results} per upload`,
          },
        ],
      };
    }
    const checked = resultsSchema.safeParse(parsed);
    if (!checked.success) return { ok: false, details: issueDetails(checked.error, ["reports", "results"]) };
    results = checked.data;
  }
  const future = futureStartIssues(results, now, payload.tests ? ["tests"] : ["reports", "results"]);
  if (future.length > 0) return { ok: false, details: future };
  return {
    ok: true,
    results: results.map((r) => ({
      path: r.path,
      name: r.name,
      status: r.status,
      startedAt: isoUtc(r.startedAt),
      durationMs: r.durationMs ?? null,
      failureDetails: !r.failureDetails
        ? null
        : redacted
          ? r.failureDetails
          : redactAndCap(r.failureDetails, LIMITS.failureDetailsChars),
      tags: r.tags ?? [],
      metadata: r.metadata ?? null,
      rerunCount: r.rerunCount ?? 0,
      suite: r.suite ?? null,
    })),
  };
}

/** The parser's message, with its line and column when it did not say them itself. */
function whereItBroke(error: ReportParseError): string {
  if (error.line === undefined || /\bline\b/i.test(error.message)) return error.message;
  return `${error.message} (line ${error.line}${error.column === undefined ? "" : `, column ${error.column}`})`;
}
