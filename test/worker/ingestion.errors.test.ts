import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { NOTHING_STORED, payload, repoWithSecret, rowCounts, sampleTests, upload } from "./ingestion-support";

/** Bad input: a clear 4xx in the one envelope, and nothing written. */
async function rejected(res: Response, status: number, code: string) {
  expect(res.status, await res.clone().text()).toBe(status);
  const body = await res.json<{
    error: { code: string; message: string; requestId: string; details?: { path: string; message: string }[] };
  }>();
  expect(body.error.code).toBe(code);
  expect(body.error.requestId).toBe(res.headers.get("X-Request-Id"));
  return body.error;
}

describe("malformed and invalid uploads", () => {
  it("wrong content type is 415", async () => {
    const repo = await repoWithSecret();
    for (const contentType of ["text/plain", "application/xml", "multipart/form-data; boundary=x", ""]) {
      await rejected(await upload(payload(repo.repoId), { ...repo, contentType }), 415, "unsupported_media_type");
    }
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("malformed JSON, invalid UTF-8 and a non-object are 400", async () => {
    const repo = await repoWithSecret();
    await rejected(await upload('{"repo_id": ', repo), 400, "bad_request");
    const invalidUtf8 = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]);
    const error = await rejected(await upload("", { ...repo, rawBody: invalidUtf8 }), 400, "bad_request");
    expect(error.message).toMatch(/UTF-8/);
    await rejected(await upload("[1,2,3]", repo), 400, "validation_failed");
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("names every failing field by its path", async () => {
    const repo = await repoWithSecret();
    const tests = sampleTests(5);
    (tests[3] as Record<string, unknown>).startedAt = "yesterday";
    (tests[1] as Record<string, unknown>).status = "flaky";
    (tests[4] as Record<string, unknown>).durationMs = -5;
    const error = await rejected(
      await upload(payload(repo.repoId, { commit_sha: "xyz", framework: "cobol", surprise: true }, tests), repo),
      400,
      "validation_failed",
    );
    const paths = error.details?.map((d) => d.path).sort();
    expect(paths).toEqual([
      "(root)",
      "commit_sha",
      "framework",
      "tests.1.status",
      "tests.3.startedAt",
      "tests.4.durationMs",
    ]);
    expect(error.details?.find((d) => d.path === "(root)")?.message).toMatch(/surprise/);
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("field lengths, counts, huge numbers and future timestamps", async () => {
    const repo = await repoWithSecret();
    const now = new Date();
    const cases: [Record<string, unknown>, string][] = [
      [{ run_id: "r".repeat(256) }, "run_id"],
      [{ branch: "b".repeat(256) }, "branch"],
      [{ idempotency_key: "k".repeat(256) }, "idempotency_key"],
      [{ tests: [] }, "tests"],
      [{ tests: undefined }, "tests"],
      [{ reports: [{ format: "junit", content: "<testsuite/>" }] }, "tests"],
      [{ tests: [{ ...sampleTests(1)[0], name: "n".repeat(1001) }] }, "tests.0.name"],
      [{ tests: [{ ...sampleTests(1)[0], path: "" }] }, "tests.0.path"],
      [{ tests: [{ ...sampleTests(1)[0], failureDetails: "x".repeat(10_001) }] }, "tests.0.failureDetails"],
      [{ tests: [{ ...sampleTests(1)[0], durationMs: 1e300 }] }, "tests.0.durationMs"],
      [{ tests: [{ ...sampleTests(1)[0], durationMs: 1.5 }] }, "tests.0.durationMs"],
      [{ tests: [{ ...sampleTests(1)[0], rerunCount: Number.MAX_SAFE_INTEGER + 2 }] }, "tests.0.rerunCount"],
      [
        { tests: [{ ...sampleTests(1)[0], startedAt: new Date(now.getTime() + 25 * 3600_000).toISOString() }] },
        "tests.0.startedAt",
      ],
      [{ tests: [{ ...sampleTests(1)[0], startedAt: "2026-01-01" }] }, "tests.0.startedAt"],
      [{ tests: [{ ...sampleTests(1)[0], extra: 1 }] }, "tests.0"],
      [{ environment: { os: 1 } }, "environment.os"],
      [{ repo_id: "not-a-uuid" }, "repo_id"],
    ];
    for (const [overrides, path] of cases) {
      const error = await rejected(await upload(payload(repo.repoId, overrides), repo), 400, "validation_failed");
      expect(
        error.details?.map((d) => d.path),
        JSON.stringify(overrides).slice(0, 80),
      ).toContain(path);
    }
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("more than 10,000 results is refused", async () => {
    const repo = await repoWithSecret();
    const error = await rejected(
      await upload(payload(repo.repoId, {}, sampleTests(10_001)), repo),
      400,
      "validation_failed",
    );
    expect(error.details?.[0].path).toBe("tests");
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("malformed JUnit XML says where it broke", async () => {
    const repo = await repoWithSecret();
    const { tests: _omitted, ...rest } = payload(repo.repoId);
    const xml = '<testsuite name="x">\n  <testcase name="a">\n  </testsuite>';
    const error = await rejected(
      await upload({ ...rest, reports: [{ format: "junit", content: xml }] }, repo),
      400,
      "validation_failed",
    );
    expect(error.details?.[0].path).toBe("reports.0.content");
    expect(error.details?.[0].message).toMatch(/line 3/i);
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("a JUnit report from the future is refused like a JSON result", async () => {
    const repo = await repoWithSecret();
    const { tests: _omitted, ...rest } = payload(repo.repoId);
    const xml = '<testsuite name="s" timestamp="2100-01-01T00:00:00"><testcase classname="c" name="t"/></testsuite>';
    const error = await rejected(
      await upload({ ...rest, reports: [{ format: "junit", content: xml }] }, repo),
      400,
      "validation_failed",
    );
    expect(error.details).toEqual([
      { path: "reports.results.0.startedAt", message: "must not be more than a day in the future" },
    ]);
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("a repo_id other than the signed-for repository is 403", async () => {
    const repo = await repoWithSecret();
    const other = await repoWithSecret();
    await rejected(await upload(payload(other.repoId), repo), 403, "forbidden");
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
    expect(await rowCounts(other.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("an oversized body is 413 before anything is parsed", async () => {
    const repo = await repoWithSecret();
    const small = { ...env, INGESTION_MAX_BODY_BYTES: "2048" };
    await rejected(
      await upload(payload(repo.repoId, {}, sampleTests(50)), { ...repo, bindings: small }),
      413,
      "payload_too_large",
    );
    // A lying Content-Length does not get past the cap either.
    const big = new TextEncoder().encode(JSON.stringify(payload(repo.repoId, {}, sampleTests(50))));
    const res = await createApp().fetch(
      new Request("http://worker/api/ingestion", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Content-Length": "10", Authorization: `Bearer ${repo.repoId}` },
        body: big,
      }),
      small,
      { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext,
    );
    await rejected(res, 413, "payload_too_large");
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("without HMAC_KEK the endpoint fails closed", async () => {
    const repo = await repoWithSecret();
    const { HMAC_KEK: _omitted, ...rest } = env;
    await rejected(await upload(payload(repo.repoId), { ...repo, bindings: rest }), 500, "misconfigured");
  });

  it("when the database is unreachable: 503 with Retry-After", async () => {
    const repo = await repoWithSecret();
    const down = { ...env, DATABASE_URL: "postgres://anchorpipe:test@127.0.0.1:9/anchorpipe" };
    const res = await upload(payload(repo.repoId), { ...repo, bindings: down });
    await rejected(res, 503, "service_unavailable");
    expect(res.headers.get("Retry-After")).toBe("30");
  });

  it("GET is 404 in the envelope", async () => {
    const res = await createApp().fetch(new Request("http://worker/api/ingestion"), env, {
      waitUntil() {},
      passThroughOnException() {},
      props: {},
    } as unknown as ExecutionContext);
    await rejected(res, 404, "not_found");
  });
});
