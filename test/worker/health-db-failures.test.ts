import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";

const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;

async function healthDb(bindings: Cloudflare.Env) {
  const res = await createApp().fetch(new Request("http://worker/api/health/db"), bindings, ctx);
  return { res, body: await res.json<Record<string, unknown>>() };
}

describe("GET /api/health/db when the database cannot be used", () => {
  it("503 with Retry-After when the gateway is down", async () => {
    // Port 9 (discard) on loopback: nothing listens there, so the connection is refused.
    const { res, body } = await healthDb({ ...env, DATABASE_URL: "postgres://anchorpipe:test@127.0.0.1:9/anchorpipe" });
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("30");
    expect(body).toMatchObject({ status: "unhealthy", database: "unreachable" });
    expect(body.latencyMs).toBeTypeOf("number");
    expect(JSON.stringify(body)).not.toContain("anchorpipe:test");
  });

  it("503 not_configured when DATABASE_URL is missing", async () => {
    const { DATABASE_URL: _omitted, ...rest } = env;
    const { res, body } = await healthDb(rest);
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("30");
    expect(body).toMatchObject({ status: "unhealthy", database: "not_configured" });
  });
});
