import { neonConfig } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import type { ServiceContext } from "./context";

/**
 * The numbers behind GET /api/metrics (docs/adr/0006-metrics.md). Two sources:
 *
 * - Durable facts are counted by the database at scrape time (uploads and results accepted, authentication
 *   failures by reason, flaky tests by class, job runs by outcome): every isolate answers the same, and
 *   nothing is lost when an isolate goes away.
 * - What only the Worker sees (request latency by route pattern, requests by status, uploads refused before
 *   they reached the database, database requests) lives in this isolate's memory. A scrape reads the
 *   isolate that served it; a new isolate starts from zero, which Prometheus treats as a counter reset.
 */

/** Upper bounds in seconds: a health check's few ms up to the ingestion of a maximal upload. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

/** Why an upload was refused, by the status it was answered with (the error envelope's code). */
const UPLOAD_REFUSAL: Record<number, string> = {
  400: "invalid",
  401: "unauthorized",
  403: "forbidden",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
  503: "service_unavailable",
};

const INGESTION_ROUTE = "/api/ingestion";

class IsolateMetrics {
  // Made on first use: a Worker's global scope may not draw random numbers, and its clock reads 0 there.
  readonly id = crypto.randomUUID();
  readonly startedAt = Date.now();
  readonly latency = new Map<string, Histogram>();
  readonly requests = new Map<string, number>();
  readonly uploads = new Map<string, number>();
  readonly dbRequests = new Map<string, number>();
}

let current: IsolateMetrics | undefined;

function metrics(): IsolateMetrics {
  current ??= new IsolateMetrics();
  return current;
}

function bump(map: Map<string, number>, key: string, by = 1) {
  map.set(key, (map.get(key) ?? 0) + by);
}

export function recordRequest(request: { method: string; route: string; status: number; seconds: number }) {
  const key = JSON.stringify([request.method, request.route]);
  const isolate = metrics();
  let histogram = isolate.latency.get(key);
  if (!histogram) {
    histogram = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
    isolate.latency.set(key, histogram);
  }
  LATENCY_BUCKETS.forEach((bound, i) => {
    if (request.seconds <= bound) histogram.buckets[i]++;
  });
  histogram.sum += request.seconds;
  histogram.count++;
  bump(isolate.requests, JSON.stringify([request.method, request.route, String(request.status)]));
  if (request.method === "POST" && request.route === INGESTION_ROUTE) {
    const reason = request.status < 300 ? "" : (UPLOAD_REFUSAL[request.status] ?? "error");
    bump(isolate.uploads, JSON.stringify([reason ? "rejected" : "accepted", reason]));
  }
}

/**
 * Counts every HTTP request the Neon driver makes (one per query or batch) by outcome. Installed once per
 * isolate by createApp(); wraps whatever fetch the driver would have used, so tools that swap it keep theirs.
 */
export function installDatabaseRequestCounter() {
  const marker = Symbol.for("anchorpipe.dbRequestCounter");
  const current = neonConfig.fetchFunction as ((url: string, init: RequestInit) => Promise<Response>) & {
    [marker]?: true;
  };
  if (current?.[marker]) return;
  const inner = current ?? ((url: string, init: RequestInit) => fetch(url, init));
  const counting = async (url: string, init: RequestInit) => {
    try {
      const res = await inner(url, init);
      bump(metrics().dbRequests, res.ok ? "ok" : "error");
      return res;
    } catch (error) {
      bump(metrics().dbRequests, "unreachable");
      throw error;
    }
  };
  neonConfig.fetchFunction = Object.assign(counting, { [marker]: true as const });
}

export interface DatabaseFacts {
  uploadsAccepted: number;
  resultsAccepted: number;
  authFailures: { reason: string; failures: number }[];
  testsByClass: { class: string; tests: number }[];
  jobRuns: { job: string; outcome: string; runs: number }[];
}

/** One database request: the durable counts. */
export async function readDatabaseFacts(ctx: Pick<ServiceContext, "db">): Promise<DatabaseFacts> {
  const { db } = ctx;
  const [uploads, failures, classes, jobRuns] = await db.batch([
    db.execute<{ uploads: number; results: string }>(sql`
      select count(*)::int as uploads, coalesce(sum(tests_total), 0)::text as results
      from ingestions where completed_at is not null`),
    db.execute<{ reason: string; failures: string }>(sql`
      select reason, sum(failures)::text as failures from auth_failure_tallies group by reason order by reason`),
    db.execute<{ class: string; tests: number }>(sql`
      select class::text as class, count(*)::int as tests from flake_scores group by class order by class`),
    db.execute<{ job: string; outcome: string; runs: number }>(sql`
      select job, outcome, count(*)::int as runs from job_runs group by job, outcome order by job, outcome`),
  ]);
  return {
    uploadsAccepted: uploads.rows[0].uploads,
    resultsAccepted: Number(uploads.rows[0].results),
    authFailures: failures.rows.map((r) => ({ reason: r.reason, failures: Number(r.failures) })),
    testsByClass: classes.rows,
    jobRuns: jobRuns.rows,
  };
}

const FLAKE_CLASSES = ["stable", "flaky", "highly_flaky", "broken", "suspect"];

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function formatNumber(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  return Number.isInteger(value) ? String(value) : value.toPrecision(6).replace(/\.?0+$/, "");
}

class Exposition {
  private lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, pairs: Record<string, string>, value: number) {
    this.lines.push(`${name}${labels(pairs)} ${formatNumber(value)}`);
    return this;
  }

  text() {
    return `${this.lines.join("\n")}\n`;
  }
}

/** Prometheus text exposition format 0.0.4. */
export function renderMetrics(facts: DatabaseFacts | null, now = Date.now()): string {
  const out = new Exposition();
  const snapshot = metrics();

  out.family("anchorpipe_up", "gauge", "1 when the database answered this scrape's counts, 0 when it did not.");
  out.sample("anchorpipe_up", {}, facts ? 1 : 0);

  if (facts) {
    out.family(
      "anchorpipe_uploads_accepted_total",
      "counter",
      "Completed uploads held in the database (database; retention removing old ones shows as a reset).",
    );
    out.sample("anchorpipe_uploads_accepted_total", {}, facts.uploadsAccepted);
    out.family(
      "anchorpipe_results_accepted_total",
      "counter",
      "Test results of the completed uploads held in the database (database; retention as above).",
    );
    out.sample("anchorpipe_results_accepted_total", {}, facts.resultsAccepted);
    out.family(
      "anchorpipe_upload_auth_failures_total",
      "counter",
      "Refused upload authentications by reason (database: auth_failure_tallies).",
    );
    for (const { reason, failures } of facts.authFailures) {
      out.sample("anchorpipe_upload_auth_failures_total", { reason }, failures);
    }
    out.family("anchorpipe_tests", "gauge", "Scored tests by flake class (database: flake_scores).");
    const byClass = new Map(facts.testsByClass.map((r) => [r.class, r.tests]));
    for (const flakeClass of FLAKE_CLASSES)
      out.sample("anchorpipe_tests", { class: flakeClass }, byClass.get(flakeClass) ?? 0);
    out.family("anchorpipe_job_runs_total", "counter", "Scheduled job runs by job and outcome (database: job_runs).");
    for (const { job, outcome, runs } of facts.jobRuns) out.sample("anchorpipe_job_runs_total", { job, outcome }, runs);
  }

  out.family(
    "anchorpipe_isolate_start_time_seconds",
    "gauge",
    "When the isolate that answered this scrape started; the isolate_* and http_* series count from then.",
  );
  out.sample("anchorpipe_isolate_start_time_seconds", { isolate: snapshot.id }, snapshot.startedAt / 1000);
  out.family("anchorpipe_isolate_uptime_seconds", "gauge", "Seconds since the answering isolate started.");
  out.sample("anchorpipe_isolate_uptime_seconds", {}, Math.max(0, (now - snapshot.startedAt) / 1000));

  out.family(
    "anchorpipe_isolate_uploads_total",
    "counter",
    "POST /api/ingestion answers in this isolate: accepted, or rejected by reason (the answer's status).",
  );
  for (const [key, count] of snapshot.uploads) {
    const [outcome, reason] = JSON.parse(key) as [string, string];
    out.sample("anchorpipe_isolate_uploads_total", reason ? { outcome, reason } : { outcome }, count);
  }

  out.family(
    "anchorpipe_isolate_db_requests_total",
    "counter",
    "HTTP requests to the database (one per query or batch) in this isolate.",
  );
  for (const [outcome, count] of snapshot.dbRequests)
    out.sample("anchorpipe_isolate_db_requests_total", { outcome }, count);

  out.family(
    "anchorpipe_http_requests_total",
    "counter",
    "Requests answered by this isolate, by route pattern and status.",
  );
  for (const [key, count] of snapshot.requests) {
    const [method, route, status] = JSON.parse(key) as [string, string, string];
    out.sample("anchorpipe_http_requests_total", { method, route, status }, count);
  }

  out.family(
    "anchorpipe_http_request_duration_seconds",
    "histogram",
    "Time to answer, by route pattern, in this isolate (Workers' clock advances only across I/O).",
  );
  for (const [key, histogram] of snapshot.latency) {
    const [method, route] = JSON.parse(key) as [string, string];
    LATENCY_BUCKETS.forEach((bound, i) => {
      out.sample(
        "anchorpipe_http_request_duration_seconds_bucket",
        { method, route, le: String(bound) },
        histogram.buckets[i],
      );
    });
    out.sample("anchorpipe_http_request_duration_seconds_bucket", { method, route, le: "+Inf" }, histogram.count);
    out.sample("anchorpipe_http_request_duration_seconds_sum", { method, route }, histogram.sum);
    out.sample("anchorpipe_http_request_duration_seconds_count", { method, route }, histogram.count);
  }
  return out.text();
}
