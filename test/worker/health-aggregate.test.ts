import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { EXPECTED_MIGRATIONS } from "../../src/services/health";

/**
 * GET /api/health, the aggregate, through the Worker against the suite's shared database. What depends on
 * other files' data (a job another test made fail) is checked by test/node/health-aggregate.test.ts on a
 * database of its own; here: the parts' shape, and 503 when the database cannot be used.
 */
const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;

interface Health {
  status: "healthy" | "unhealthy";
  failing: string[];
  checks: Record<string, { status: string; [detail: string]: unknown }>;
  timestamp: string;
}

async function health(bindings?: Cloudflare.Env) {
  const res = bindings
    ? await createApp().fetch(new Request("http://worker/api/health"), bindings, ctx)
    : await exports.default.fetch("http://worker/api/health");
  return { res, body: await res.json<Health>() };
}

const PARTS = ["database", "defaultPartition", "ingestion", "jobs", "migrations", "partitions"];

describe("GET /api/health", () => {
  it("reports every part; 200 exactly when none fails", async () => {
    const { res, body } = await health();
    expect(Object.keys(body.checks).sort()).toEqual(PARTS);
    expect(res.status).toBe(body.failing.length ? 503 : 200);
    expect(body.status).toBe(body.failing.length ? "unhealthy" : "healthy");
    expect(body.failing).toEqual(PARTS.filter((part) => body.checks[part].status === "fail"));
    expect(body.checks.database).toMatchObject({ status: "ok", database: "connected" });
    expect(body.checks.database.latencyMs).toBeTypeOf("number");
    // Other files may briefly put rows there (test/node/health-aggregate.test.ts proves "fail" on its own database).
    const rows = body.checks.defaultPartition.rows as number;
    expect(body.checks.defaultPartition).toEqual({ status: rows > 0 ? "fail" : "ok", rows });
    // Migration 0002 makes this month's and next month's partitions: never a failure on a fresh database.
    expect(body.checks.partitions.status).not.toBe("fail");
    expect(body.checks.partitions.months).toContain(new Date().toISOString().slice(0, 7));
    // The Worker's role may not read the migrations ledger: then "unknown", else every expected one applied.
    const migrations = body.checks.migrations;
    if (migrations.status === "unknown") expect(migrations.reason).toMatch(/ledger cannot be read \(42501\)/);
    else expect(migrations).toMatchObject({ status: "ok", expected: EXPECTED_MIGRATIONS.length, pending: [] });
    expect(Date.parse(body.timestamp)).not.toBeNaN();
  });

  it("calls within HEALTH_CACHE_MS share one check (a public endpoint cannot load the database)", async () => {
    const answers = await Promise.all([health(), health(), health()]);
    expect(new Set(answers.map(({ body }) => body.timestamp)).size).toBe(1);
  });

  it("503 naming the database, with Retry-After, when the gateway is down; no connection string", async () => {
    const { res, body } = await health({ ...env, DATABASE_URL: "postgres://anchorpipe:test@127.0.0.1:9/anchorpipe" });
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("30");
    expect(body).toMatchObject({ status: "unhealthy", failing: ["database"] });
    expect(body.checks.database).toMatchObject({ status: "fail", database: "unreachable" });
    for (const part of PARTS.filter((p) => p !== "database")) expect(body.checks[part].status).toBe("unknown");
    expect(JSON.stringify(body)).not.toContain("anchorpipe:test");
  });

  it("503 naming the database when DATABASE_URL is not configured", async () => {
    const { DATABASE_URL: _omitted, ...rest } = env;
    const { res, body } = await health(rest);
    expect(res.status).toBe(503);
    expect(body).toMatchObject({ failing: ["database"], checks: { database: { database: "not_configured" } } });
  });
});

describe("GET /api/version", () => {
  it("name, version and the build's commit (unknown when the build did not define it)", async () => {
    const res = await exports.default.fetch("http://worker/api/version");
    expect(res.status).toBe(200);
    const body = await res.json<{ name: string; version: string; commit: string }>();
    expect(body).toMatchObject({ name: "anchorpipe-edge", version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(body.commit).toMatch(/^([0-9a-f]{7,40}|unknown)$/);
  });
});
