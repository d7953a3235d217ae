import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("GET /api/health/live", () => {
  // Liveness moved here from GET /api/health when that became the aggregate (issue 12).
  it("answers without touching the database", async () => {
    const res = await exports.default.fetch("http://worker/api/health/live");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok" });
    expect(res.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("GET /api/health/db", () => {
  it("reaches PostgreSQL through the gateway", async () => {
    const res = await exports.default.fetch("http://worker/api/health/db");
    const body = await res.json<Record<string, unknown>>();
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ status: "healthy", database: "connected" });
    expect(body.latencyMs).toBeTypeOf("number");
    expect(Date.parse(body.timestamp as string)).not.toBeNaN();
  });
});
