import { env } from "cloudflare:workers";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { api } from "./api-support";
import { payload, repoWithSecret, sampleTests, upload } from "./ingestion-support";

/**
 * GET /api/metrics through the Worker, its text read back by a Prometheus text-format parser. Every request
 * here goes through createApp() with an OPERATOR_TOKEN binding, so the per-isolate series counted while
 * serving them are the ones the scrape reads.
 */
const OPERATOR_TOKEN = `op_${crypto.randomUUID()}${crypto.randomUUID()}`;
const bindings: Cloudflare.Env = { ...env, OPERATOR_TOKEN };

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

/** `null`: no Authorization header. */
async function scrape(token: string | null = OPERATOR_TOKEN, bound: Cloudflare.Env = bindings) {
  return api("GET", "/api/metrics", { token: token ?? undefined, bindings: bound });
}

async function families(): Promise<Map<string, Family> & { text: string }> {
  const res = await scrape();
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  const parsed = parsePrometheusTextFormat(text) as Family[];
  return Object.assign(new Map(parsed.map((family) => [family.name, family])), { text });
}

/**
 * One series of a labelled histogram, parsed. The parser follows prom2json, which folds a histogram's series
 * into one entry and keeps _count and _sum only when they carry no labels: so the series' lines are picked
 * out and their selecting labels removed before parsing.
 */
function histogramSeries(text: string, name: string, labels: Record<string, string>) {
  const selector = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  const lines = text.split("\n").flatMap((line) => {
    if (line === `# TYPE ${name} histogram` || line.startsWith(`# HELP ${name} `)) return [line];
    if (!line.startsWith(`${name}_`) || !line.includes(`{${selector}`)) return [];
    return [line.replace(`{${selector},`, "{").replace(`{${selector}}`, "")];
  });
  const [family] = parsePrometheusTextFormat(`${lines.join("\n")}\n`);
  return family?.metrics[0];
}

const value = (family: Family | undefined, labels: Record<string, string> = {}) =>
  Number(
    family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? Number.NaN,
  );

describe("GET /api/metrics: the operator token", () => {
  it("404 in the error envelope when no OPERATOR_TOKEN is configured", async () => {
    const res = await api("GET", "/api/metrics", { token: OPERATOR_TOKEN, bindings: env });
    expect(res.status).toBe(404);
    expect((await res.json<{ error: { code: string } }>()).error.code).toBe("not_found");
  });

  it.each([
    ["no token", null],
    ["a wrong token", `${OPERATOR_TOKEN.slice(0, -1)}x`],
    ["a prefix of the token", OPERATOR_TOKEN.slice(0, 20)],
    ["the token with more after it", `${OPERATOR_TOKEN}x`],
  ])("401 in the error envelope with %s", async (_, token) => {
    const res = await scrape(token);
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer /);
    const body = await res.json<{ error: { code: string; requestId: string } }>();
    expect(body.error.code).toBe("unauthorized");
    expect(body.error.requestId).toBe(res.headers.get("X-Request-Id"));
  });

  it("a token shorter than 32 characters is refused as configuration (fails closed)", async () => {
    const res = await scrape("short", { ...env, OPERATOR_TOKEN: "short" });
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain("short");
  });
});

describe("GET /api/metrics: what it counts", () => {
  it("uploads accepted and rejected, latency by route pattern, database requests, tests by class", async () => {
    const repo = await repoWithSecret("metrics");
    const before = await families();

    for (let i = 0; i < 2; i++) {
      const res = await upload(payload(repo.repoId, {}, sampleTests(4)), { ...repo, bindings });
      expect(res.status).toBe(200);
    }
    const wrong = await upload(payload(repo.repoId), {
      ...repo,
      secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      bindings,
    });
    expect(wrong.status).toBe(401);
    const notJson = await upload("x", { ...repo, contentType: "text/plain", bindings });
    expect(notJson.status).toBe(415);
    expect((await api("GET", `/api/repos/${repo.repoId}/tests`, { bindings })).status).toBe(401);

    const after = await families();
    expect(value(after.get("anchorpipe_up"))).toBe(1);

    // Durable, from the database: other test files upload too, so at least what this one added.
    const accepted = (f: Map<string, Family>) => value(f.get("anchorpipe_uploads_accepted_total"));
    const results = (f: Map<string, Family>) => value(f.get("anchorpipe_results_accepted_total"));
    expect(accepted(after) - accepted(before)).toBeGreaterThanOrEqual(2);
    expect(results(after) - results(before)).toBeGreaterThanOrEqual(8);
    expect(after.get("anchorpipe_uploads_accepted_total")?.type).toBe("COUNTER");
    const authFailures = after.get("anchorpipe_upload_auth_failures_total");
    expect(authFailures?.metrics.length).toBeGreaterThan(0);
    expect(authFailures?.metrics.every((m) => m.labels?.reason && Number(m.value) > 0)).toBe(true);

    const classes = after.get("anchorpipe_tests");
    expect(classes?.type).toBe("GAUGE");
    expect(classes?.metrics.map((m) => m.labels?.class).sort()).toEqual([
      "broken",
      "flaky",
      "highly_flaky",
      "stable",
      "suspect",
    ]);

    // Per isolate: this file's requests were all served by this isolate.
    const uploads = after.get("anchorpipe_isolate_uploads_total");
    const earlier = (labels: Record<string, string>) =>
      value(before.get("anchorpipe_isolate_uploads_total"), labels) || 0;
    const uploadDelta = (labels: Record<string, string>) => value(uploads, labels) - earlier(labels);
    expect(uploadDelta({ outcome: "accepted" })).toBe(2);
    expect(uploadDelta({ outcome: "rejected", reason: "unauthorized" })).toBe(1);
    expect(uploadDelta({ outcome: "rejected", reason: "unsupported_media_type" })).toBe(1);

    expect(value(after.get("anchorpipe_isolate_db_requests_total"), { outcome: "ok" })).toBeGreaterThan(0);

    const latency = after.get("anchorpipe_http_request_duration_seconds");
    expect(latency?.type).toBe("HISTOGRAM");
    const ingestion = histogramSeries(after.text, "anchorpipe_http_request_duration_seconds", {
      method: "POST",
      route: "/api/ingestion",
    });
    expect(ingestion).toBeDefined();
    const buckets = Object.entries(ingestion?.buckets ?? {})
      .map(([le, n]) => [Number(le), Number(n)] as const)
      .filter(([le]) => Number.isFinite(le))
      .sort((a, b) => a[0] - b[0]);
    expect(buckets.length).toBeGreaterThan(5);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i][1]).toBeGreaterThanOrEqual(buckets[i - 1][1]);
    expect(Number(ingestion?.count)).toBeGreaterThanOrEqual(4);
    expect(buckets.at(-1)?.[1]).toBeLessThanOrEqual(Number(ingestion?.count));
    // Route patterns, never a raw path: no repository id in any label.
    const requests = after.get("anchorpipe_http_requests_total");
    const routes = requests?.metrics.map((m) => m.labels?.route ?? "") ?? [];
    expect(routes).toContain("/api/repos/:repoId/tests");
    expect(after.text).not.toContain(repo.repoId);
    expect(value(requests, { method: "GET", route: "/api/repos/:repoId/tests", status: "401" })).toBeGreaterThanOrEqual(
      1,
    );
  });

  it("with the database down, the isolate's series are still served and anchorpipe_up is 0", async () => {
    const down = { ...bindings, DATABASE_URL: "postgres://anchorpipe:test@127.0.0.1:9/anchorpipe" };
    const down2 = { ...down, DATABASE_URL_READONLY: down.DATABASE_URL };
    const res = await scrape(OPERATOR_TOKEN, down2);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain("anchorpipe:test");
    const parsed = new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
    expect(value(parsed.get("anchorpipe_up"))).toBe(0);
    expect(parsed.has("anchorpipe_uploads_accepted_total")).toBe(false);
    expect(parsed.has("anchorpipe_http_request_duration_seconds")).toBe(true);
  });
});
