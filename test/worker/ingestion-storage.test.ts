import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { NormalizedResult } from "../../src/ingestion/normalize";
import { chunkResults, type IngestionInput, storeIngestion } from "../../src/services/ingestion";
import { repoWithSecret, rowCounts, serviceContext, testDb, upload } from "./ingestion-support";

/**
 * The storage service on its own, for what the HTTP tests cannot reach:
 * uploads split over several database requests, and resuming one that died
 * half-way. (Chunks are made small here; in production they are 6 MiB.)
 */
function results(n: number): NormalizedResult[] {
  return Array.from({ length: n }, (_, i) => ({
    path: `src/part${i % 4}.test.ts`,
    name: `case ${i} — ünïcödé ✓ 测试`,
    status: i % 9 === 0 ? "fail" : "pass",
    startedAt: new Date().toISOString(),
    durationMs: i,
    failureDetails: i % 9 === 0 ? "x".repeat(200) : null,
    tags: i % 2 ? ["even"] : [],
    metadata: { i },
    rerunCount: 0,
    suite: null,
  }));
}

async function input(
  repoId: string,
  secretId: string,
  n: number,
  key = `key-${crypto.randomUUID()}`,
): Promise<IngestionInput> {
  return {
    repoId,
    idempotencyKey: key,
    commitSha: "c".repeat(40),
    runId: "run-chunks",
    framework: "vitest",
    branch: "main",
    pullRequest: null,
    environment: null,
    environmentHash: null,
    metadata: null,
    scheme: "v2",
    secretId,
    keyId: "key",
    payloadSha256: "d".repeat(64),
    results: results(n),
    userAgent: null,
    ipAddress: null,
  };
}

describe("storage across several database requests", () => {
  it("chunks stay under the budget and keep every result once, in order", () => {
    const chunks = chunkResults(results(200), 8 * 1024);
    expect(chunks.length).toBeGreaterThan(3);
    const all = chunks.flatMap((chunk) => JSON.parse(chunk) as { ord: number }[]);
    expect(all.map((r) => r.ord)).toEqual([...Array(200).keys()]);
    for (const chunk of chunks)
      expect(new TextEncoder().encode(JSON.stringify(chunk)).length).toBeLessThanOrEqual(8 * 1024 + 2048);
  });

  it("a multi-request upload stores every row once, and a repeat is a duplicate", async () => {
    const repo = await repoWithSecret();
    const upload1 = await input(repo.repoId, repo.secretId, 120);
    const first = await storeIngestion(serviceContext(), upload1, 4 * 1024);
    expect(first.kind).toBe("stored");
    expect(await rowCounts(repo.repoId)).toEqual({
      ingestions: 1,
      test_cases: 120,
      test_runs: 120,
      telemetry: 1,
      audit: 2,
    });
    const again = await storeIngestion(serviceContext(), upload1, 4 * 1024);
    expect(again).toMatchObject({ kind: "duplicate", response: { isDuplicate: true } });
    expect(await rowCounts(repo.repoId)).toEqual({
      ingestions: 1,
      test_cases: 120,
      test_runs: 120,
      telemetry: 1,
      audit: 2,
    });
    const names = await testDb().execute<{ name: string }>(
      sql`select name from test_cases where repo_id = ${repo.repoId} and name like 'case 7 %'`,
    );
    expect(names.rows).toEqual([{ name: "case 7 — ünïcödé ✓ 测试" }]);
  });

  it("a retry completes an upload that died after some of its requests, storing each row once", async () => {
    const repo = await repoWithSecret();
    const data = await input(repo.repoId, repo.secretId, 90);
    const db = testDb();
    // What a first attempt leaves behind when it dies after two chunks: the ledger row, incomplete,
    // and the runs of the first 40 results (with the ids and created_at the storage derives).
    const ledgerId = crypto.randomUUID();
    await db.execute(sql`
      insert into ingestions (id, repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme,
        tests_total, tests_failed, tests_skipped, payload_sha256, response)
      values (${ledgerId}, ${repo.repoId}, ${data.idempotencyKey}, ${data.commitSha}, ${data.runId}, 'vitest', 'v2',
        90, 10, 0, ${data.payloadSha256}, ${JSON.stringify({ runId: data.runId, ingestionId: ledgerId, message: "Test report received", summary: {}, isDuplicate: false })}::jsonb)`);
    const partial = { ...data, results: data.results.slice(0, 40) };
    const [firstChunk] = chunkResults(partial.results, 1024 * 1024);
    await db.execute(sql`
      with input as (select * from jsonb_to_recordset(${firstChunk}::jsonb) as t(ord int, path text, name text, status test_run_status, started_at timestamptz)),
      cases as (
        insert into test_cases (repo_id, path, name, framework) select distinct ${repo.repoId}::uuid, path, name, 'vitest' from input
        returning id, path, name)
      insert into test_runs (id, repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, created_at)
      select md5(${ledgerId} || ':' || input.ord)::uuid, ${repo.repoId}::uuid, cases.id, ${ledgerId}::uuid, ${data.commitSha}, ${data.runId},
        input.status, input.started_at, (select received_at from ingestions where id = ${ledgerId})
      from input join cases using (path, name)`);
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: 1, test_runs: 40, telemetry: 0 });

    const retried = await storeIngestion(serviceContext(), data, 4 * 1024);
    expect(retried).toMatchObject({ kind: "stored", response: { ingestionId: ledgerId } });
    expect(await rowCounts(repo.repoId)).toEqual({
      ingestions: 1,
      test_cases: 90,
      test_runs: 90,
      telemetry: 1,
      audit: 2,
    });
  });

  it("unicode names and details survive the HTTP path too", async () => {
    const repo = await repoWithSecret();
    const tests = [
      {
        path: "spec/日本語_spec.rb",
        name: "handles emoji 🎉 and RTL שלום",
        status: "fail",
        startedAt: new Date().toISOString(),
        failureDetails: "Ошибка: ожидалось 1 — получено 2 🙈",
      },
    ];
    const res = await upload(
      { repo_id: repo.repoId, commit_sha: "e".repeat(40), run_id: "unicode", framework: "unknown", tests },
      repo,
    );
    expect(res.status).toBe(200);
    const stored = await testDb().execute<{ path: string; name: string; details: string }>(sql`
      select tc.path, tc.name, tr.failure_details as details from test_runs tr join test_cases tc on tc.id = tr.test_case_id
      where tr.repo_id = ${repo.repoId}`);
    expect(stored.rows).toEqual([{ path: tests[0].path, name: tests[0].name, details: tests[0].failureDetails }]);
  });
});
