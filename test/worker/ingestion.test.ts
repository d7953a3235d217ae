import { and, asc, eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { ingestions, testCases, testRuns } from "../../src/db/schema";
import { sha256Hex } from "../../src/lib/encoding";
import { countingBindings, payload, repoWithSecret, rowCounts, sampleTests, testDb, upload } from "./ingestion-support";

describe("POST /api/ingestion stores every result", () => {
  it("answers anchorpipe's response shape and writes the rows", async () => {
    const repo = await repoWithSecret();
    const body = payload(
      repo.repoId,
      { commit_sha: "ABCDEF0123".repeat(4), pull_request: 42, environment: { os: "linux", node: "22" } },
      sampleTests(10),
    );
    const res = await upload(body, repo);
    expect(res.status).toBe(200);
    const json = await res.json<Record<string, unknown>>();
    expect(json).toEqual({
      runId: body.run_id,
      ingestionId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      message: "Test report received",
      summary: {
        tests_parsed: 10,
        tests_failed: 1,
        tests_skipped: 1,
        flaky_candidates: 0,
        retry_recoveries: 0,
        attempts: 10,
      },
      isDuplicate: false,
    });

    const db = testDb();
    const [ingestion] = await db
      .select()
      .from(ingestions)
      .where(eq(ingestions.id, json.ingestionId as string));
    expect(ingestion).toMatchObject({
      repoId: repo.repoId,
      commitSha: "abcdef0123".repeat(4),
      runId: body.run_id,
      framework: "vitest",
      pullRequest: "42",
      signatureScheme: "v2",
      testsTotal: 10,
      testsFailed: 1,
      testsSkipped: 1,
      environment: { os: "linux", node: "22" },
    });
    expect(ingestion.completedAt).toBeInstanceOf(Date);
    expect(ingestion.environmentHash).toMatch(/^[0-9a-f]{64}$/);

    const runs = await db
      .select({
        name: testCases.name,
        path: testCases.path,
        status: testRuns.status,
        durationMs: testRuns.durationMs,
        commitSha: testRuns.commitSha,
        failureDetails: testRuns.failureDetails,
        branch: testRuns.branch,
      })
      .from(testRuns)
      .innerJoin(testCases, eq(testCases.id, testRuns.testCaseId))
      .where(eq(testRuns.ingestionId, ingestion.id))
      .orderBy(asc(testRuns.durationMs));
    expect(runs).toHaveLength(10);
    expect(runs[3]).toEqual({
      name: "case 3",
      path: "src/module3.test.ts",
      status: "fail",
      durationMs: 13,
      commitSha: "abcdef0123".repeat(4),
      failureDetails: "AssertionError: expected 3 to be 4",
      branch: "main",
    });
    expect(await rowCounts(repo.repoId)).toEqual({
      ingestions: 1,
      test_cases: 10,
      test_runs: 10,
      telemetry: 1,
      audit: 2,
    });
  });

  it("a second run of the same tests adds runs, not test cases", async () => {
    const repo = await repoWithSecret();
    expect((await upload(payload(repo.repoId), repo)).status).toBe(200);
    expect((await upload(payload(repo.repoId, { commit_sha: "b".repeat(40) }), repo)).status).toBe(200);
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: 2, test_cases: 3, test_runs: 6 });
  });

  it("the v1 scheme stores too, keyed by the payload's idempotency_key or the body's SHA-256", async () => {
    const repo = await repoWithSecret();
    const body = payload(repo.repoId);
    const first = await upload(body, { ...repo, scheme: "v1" });
    expect(first.status).toBe(200);
    const again = await upload(body, { ...repo, scheme: "v1" });
    expect(await again.json()).toMatchObject({ isDuplicate: true });
    const keyed = await upload({ ...body, idempotency_key: "ci-42-shard-1" }, { ...repo, scheme: "v1" });
    expect(keyed.status).toBe(200);
    const keys = await testDb()
      .select({ key: ingestions.idempotencyKey })
      .from(ingestions)
      .where(eq(ingestions.repoId, repo.repoId));
    const digest = await sha256Hex(new TextEncoder().encode(JSON.stringify(body)) as Uint8Array<ArrayBuffer>);
    expect(keys.map((k) => k.key).sort()).toEqual([`auto:sha256:${digest}`, "ci-42-shard-1"]);
  });

  it("shards of one anchorpipe v1 run (same run_id, no idempotency_key, other tests) are each stored", async () => {
    const repo = await repoWithSecret();
    const shared = { run_id: "ci-run-77", commit_sha: "f".repeat(40) };
    const shard1 = payload(repo.repoId, shared, sampleTests(4));
    const shard2 = payload(
      repo.repoId,
      shared,
      sampleTests(4).map((t) => ({ ...t, name: `${t.name} (shard 2)` })),
    );
    for (const shard of [shard1, shard2]) {
      const res = await upload(shard, { ...repo, scheme: "v1" });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(await res.json()).toMatchObject({ isDuplicate: false, summary: { tests_parsed: 4 } });
    }
    // Only a byte-identical resend is a duplicate.
    expect(await (await upload(shard2, { ...repo, scheme: "v1" })).json()).toMatchObject({ isDuplicate: true });
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: 2, test_cases: 8, test_runs: 8 });
  });

  it("counts reruns, keeps suites and tags, and reports flaky candidates", async () => {
    const repo = await repoWithSecret();
    const tests = [
      {
        path: "a.test.ts",
        name: "retried",
        status: "pass",
        startedAt: new Date().toISOString(),
        rerunCount: 2,
        suite: "A",
        tags: ["slow"],
      },
      { path: "a.test.ts", name: "solid", status: "pass", startedAt: new Date().toISOString() },
    ];
    const res = await upload(payload(repo.repoId, {}, tests), repo);
    expect((await res.json<{ summary: unknown }>()).summary).toEqual({
      tests_parsed: 2,
      tests_failed: 0,
      tests_skipped: 0,
      // The retry recovery is flake evidence: the upload's own scoring already calls the test flaky.
      flaky_candidates: 1,
      retry_recoveries: 1,
      attempts: 4,
    });
    const [row] = await testDb()
      .select({ rerunCount: testRuns.rerunCount, suite: testCases.suite, tags: testCases.tags })
      .from(testRuns)
      .innerJoin(testCases, eq(testCases.id, testRuns.testCaseId))
      .where(and(eq(testRuns.repoId, repo.repoId), eq(testCases.name, "retried")));
    expect(row).toEqual({ rerunCount: 2, suite: "A", tags: ["slow"] });
  });

  it("redacts and caps failure details before storing them", async () => {
    const repo = await repoWithSecret();
    const secretish =
      "Error: login as dev@example.com failed with token=ghp_abcdefghijklmnopqrstuvwxyz0123456789 at https://user:hunter2@db.internal/x";
    const tests = [
      { path: "p", name: "n", status: "fail", startedAt: new Date().toISOString(), failureDetails: secretish },
    ];
    expect((await upload(payload(repo.repoId, {}, tests), repo)).status).toBe(200);
    const [run] = await testDb()
      .select({ details: testRuns.failureDetails })
      .from(testRuns)
      .where(eq(testRuns.repoId, repo.repoId));
    expect(run.details).not.toMatch(/dev@example\.com|ghp_abcdef|hunter2/);
    expect(run.details).toContain("[REDACTED:");
    expect(run.details).toContain("Error: login as");
  });

  it("stores JUnit XML reports parsed at the edge", async () => {
    const repo = await repoWithSecret();
    const xml = `<?xml version="1.0"?>
      <testsuites><testsuite name="pkg" timestamp="2026-01-02T03:04:05">
        <testcase classname="pkg.A" name="ok" time="0.5"/>
        <testcase classname="pkg.A" name="bad" time="1"><failure message="boom">trace</failure></testcase>
        <testcase classname="pkg.B" name="later"><skipped/></testcase>
      </testsuite></testsuites>`;
    const { tests: _omitted, ...rest } = payload(repo.repoId, { framework: "junit" });
    const res = await upload({ ...rest, reports: [{ format: "junit", content: xml }] }, repo);
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await res.json<{ summary: unknown }>()).summary).toEqual({
      tests_parsed: 3,
      tests_failed: 1,
      tests_skipped: 1,
      flaky_candidates: 0,
      retry_recoveries: 0,
      attempts: 3,
    });
    const rows = await testDb()
      .select({
        path: testCases.path,
        name: testCases.name,
        status: testRuns.status,
        durationMs: testRuns.durationMs,
        startedAt: testRuns.startedAt,
      })
      .from(testRuns)
      .innerJoin(testCases, eq(testCases.id, testRuns.testCaseId))
      .where(eq(testRuns.repoId, repo.repoId))
      .orderBy(asc(testCases.name));
    expect(rows).toEqual([
      { path: "pkg.A", name: "bad", status: "fail", durationMs: 1000, startedAt: new Date("2026-01-02T03:04:05Z") },
      { path: "pkg.B", name: "later", status: "skip", durationMs: null, startedAt: new Date("2026-01-02T03:04:05Z") },
      { path: "pkg.A", name: "ok", status: "pass", durationMs: 500, startedAt: new Date("2026-01-02T03:04:05Z") },
    ]);
  });
});

describe("idempotency", () => {
  it("the same upload again returns the stored response and writes nothing", async () => {
    const repo = await repoWithSecret();
    const body = payload(repo.repoId);
    const webhookId = `msg_${crypto.randomUUID()}`;
    const first = await (await upload(body, { ...repo, webhookId })).json<Record<string, unknown>>();
    const before = await rowCounts(repo.repoId);
    const second = await upload(body, { ...repo, webhookId });
    expect(second.status).toBe(200);
    expect(await second.json()).toEqual({ ...first, isDuplicate: true });
    expect(await rowCounts(repo.repoId)).toEqual(before);
  });

  it("the same key with a different body is a conflict", async () => {
    const repo = await repoWithSecret();
    const webhookId = `msg_${crypto.randomUUID()}`;
    await upload(payload(repo.repoId), { ...repo, webhookId });
    const before = await rowCounts(repo.repoId);
    const res = await upload(payload(repo.repoId, { branch: "other" }), { ...repo, webhookId });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: { code: "conflict" } });
    expect(await rowCounts(repo.repoId)).toEqual(before);
  });

  it("50 identical uploads sent at once leave exactly one set of rows", async () => {
    const repo = await repoWithSecret();
    const body = payload(repo.repoId, {}, sampleTests(20));
    const webhookId = `msg_${crypto.randomUUID()}`;
    const responses = await Promise.all(Array.from({ length: 50 }, () => upload(body, { ...repo, webhookId })));
    const bodies = await Promise.all(responses.map((r) => r.json<{ isDuplicate: boolean; ingestionId: string }>()));
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(bodies.filter((b) => !b.isDuplicate)).toHaveLength(1);
    expect(new Set(bodies.map((b) => b.ingestionId)).size).toBe(1);
    expect(await rowCounts(repo.repoId)).toEqual({
      ingestions: 1,
      test_cases: 20,
      test_runs: 20,
      telemetry: 1,
      audit: 2,
    });
  });

  it("an upload left half-written is completed by its retry, each row once", async () => {
    const repo = await repoWithSecret();
    const body = payload(repo.repoId, {}, sampleTests(5));
    const webhookId = `msg_${crypto.randomUUID()}`;
    // Simulate a first attempt that died after its first request: the ledger row exists, incomplete.
    const bodyText = JSON.stringify(body);
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(bodyText)))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    await testDb().execute(sql`
      insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
        tests_failed, tests_skipped, payload_sha256, response)
      values (${repo.repoId}, ${webhookId}, ${"a".repeat(40)}, ${body.run_id}, 'vitest', 'v2', 5, 0, 1, ${digest},
        ${JSON.stringify({ runId: body.run_id, ingestionId: "first-attempt", message: "Test report received", summary: {}, isDuplicate: false })}::jsonb)`);
    const res = await upload(bodyText, { ...repo, webhookId });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ingestionId: "first-attempt", isDuplicate: false });
    expect(await rowCounts(repo.repoId)).toEqual({
      ingestions: 1,
      test_cases: 5,
      test_runs: 5,
      telemetry: 1,
      audit: 2,
    });
  });
});

describe("database round trips", () => {
  it("are few and do not grow with the number of results", async () => {
    const counts: number[] = [];
    for (const n of [1, 100, 2000]) {
      const repo = await repoWithSecret();
      const { bindings, requests } = await countingBindings();
      const res = await upload(payload(repo.repoId, {}, sampleTests(n)), { ...repo, bindings });
      expect(res.status).toBe(200);
      counts.push(await requests());
    }
    // Secrets lookup, then one batch that stores everything.
    expect(counts).toEqual([2, 2, 2]);
    // v1 reads the repository's signature policy in the same request as its secrets.
    const repo = await repoWithSecret();
    const { bindings, requests } = await countingBindings();
    expect((await upload(payload(repo.repoId), { ...repo, scheme: "v1", bindings })).status).toBe(200);
    expect(await requests()).toBe(2);
  });
});
