import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { ApiError } from "../../src/lib/errors";

/** The same app factory the Worker uses, with extra routes that fail on purpose. */
function appWithFailingRoutes() {
  const app = createApp();
  app.get("/api/test/boom", () => {
    throw new Error("internal detail: password=hunter2 at db.ts:42");
  });
  app.get("/api/test/conflict", () => {
    throw new ApiError("conflict", "Already there.", { field: "name" });
  });
  return app;
}

const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;

describe("error envelope", () => {
  it("404 for an unknown route, in the envelope", async () => {
    const res = await exports.default.fetch("http://worker/api/nope", { method: "DELETE" });
    expect(res.status).toBe(404);
    const body = await res.json();
    expect(body).toEqual({
      error: {
        code: "not_found",
        message: "No route for DELETE /api/nope.",
        requestId: res.headers.get("X-Request-Id"),
      },
    });
  });

  it("an unexpected exception is a 500 without internals", async () => {
    const res = await appWithFailingRoutes().fetch(new Request("http://worker/api/test/boom"), env, ctx);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toMatch(/hunter2|db\.ts|stack|at /);
    expect(JSON.parse(text)).toEqual({
      error: { code: "internal_error", message: "An unexpected error occurred.", requestId: expect.any(String) },
    });
  });

  it("an ApiError keeps its status, code and details", async () => {
    const res = await appWithFailingRoutes().fetch(new Request("http://worker/api/test/conflict"), env, ctx);
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({
      error: { code: "conflict", message: "Already there.", details: { field: "name" } },
    });
  });

  it("invalid bindings fail closed with one clear 500", async () => {
    const res = await createApp().fetch(
      new Request("http://worker/api/health"),
      { ...env, DATABASE_URL: "mysql://nope", NEON_LOCAL_GATEWAY: "maybe" },
      ctx,
    );
    expect(res.status).toBe(500);
    const body = await res.json<{ error: { code: string; message: string } }>();
    expect(body.error).toMatchObject({ code: "misconfigured", message: "The service is misconfigured." });
    expect(JSON.stringify(body)).not.toContain("mysql://nope");
  });
});

describe("request id", () => {
  it("keeps a well-formed id from the client", async () => {
    const res = await exports.default.fetch("http://worker/api/health", {
      headers: { "X-Request-Id": "ci-run-1234.attempt-2" },
    });
    expect(res.headers.get("X-Request-Id")).toBe("ci-run-1234.attempt-2");
  });

  it("replaces an unusable one", async () => {
    const res = await exports.default.fetch("http://worker/api/health", { headers: { "X-Request-Id": "bad id\n" } });
    expect(res.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
