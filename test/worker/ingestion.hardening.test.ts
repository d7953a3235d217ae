import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, sql } from "drizzle-orm";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LIMITS, MAX_SIGNATURE_ENTRIES } from "../../src/contract/ingestion";
import { hmacSecrets, repos } from "../../src/db/schema";
import worker from "../../src/index";
import type { NormalizedResult } from "../../src/ingestion/normalize";
import { signedRequestFrom, verifySignature } from "../../src/ingestion/signature";
import { type IngestionInput, IngestionRefusedError, storeIngestion } from "../../src/services/ingestion";
import { createSecret } from "../../src/services/secrets";
import { authenticateUpload } from "../../src/services/upload-auth";
import {
  keyring,
  NOTHING_STORED,
  payload,
  repoWithSecret,
  rowCounts,
  sampleTests,
  serviceContext,
  signV2,
  testDb,
  upload,
} from "./ingestion-support";

/** One test per defect of the hardening issue that the other ingestion suites do not already pin down. */

afterEach(() => vi.restoreAllMocks());

async function errorBody(res: Response) {
  return res.json<{ error: { code: string; message: string; details?: { path: string; message: string }[] } }>();
}

function storedResults(n: number, poisonLast = false): NormalizedResult[] {
  return Array.from({ length: n }, (_, i) => ({
    path: `src/chunk${i % 3}.test.ts`,
    name: i === n - 1 && poisonLast ? "POISONED-NAME\u0000by postgres" : `case ${i}`,
    status: "pass",
    startedAt: new Date().toISOString(),
    durationMs: i,
    failureDetails: null,
    tags: [],
    metadata: { i },
    rerunCount: 0,
    suite: null,
  }));
}

function storageInput(repo: { repoId: string; secretId: string }, results: NormalizedResult[]): IngestionInput {
  return {
    repoId: repo.repoId,
    idempotencyKey: `key-${crypto.randomUUID()}`,
    commitSha: "c".repeat(40),
    runId: "run-late-failure",
    framework: "vitest",
    branch: null,
    pullRequest: null,
    environment: null,
    environmentHash: null,
    metadata: null,
    scheme: "v2",
    secretId: repo.secretId,
    keyId: "key",
    payloadSha256: "e".repeat(64),
    results,
    userAgent: null,
    ipAddress: null,
  };
}

describe("a multi-request upload whose late chunk fails (defect 2)", () => {
  it("is removed whole, answers why, and a retry gets the same answer with nothing stored", async () => {
    const repo = await repoWithSecret("late-chunk");
    // A test case another upload already has: it must survive the clean-up.
    const earlier = await upload(
      payload(repo.repoId, {}, [
        { path: "src/chunk0.test.ts", name: "case 0", status: "pass", startedAt: new Date().toISOString() },
      ]),
      repo,
    );
    expect(earlier.status).toBe(200);
    const before = await rowCounts(repo.repoId);
    const logged: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: string) => logged.push(line));
    vi.spyOn(console, "error").mockImplementation((line: string) => logged.push(line));

    // 60 results in chunks of ~2 KiB: the last chunk holds a value PostgreSQL refuses.
    const input = storageInput(repo, storedResults(60, true));
    for (let attempt = 0; attempt < 2; attempt++) {
      await expect(storeIngestion(serviceContext(), input, 2 * 1024)).rejects.toBeInstanceOf(IngestionRefusedError);
      expect(await rowCounts(repo.repoId)).toEqual(before);
    }
    const cases = await testDb().execute<{ name: string }>(
      sql`select name from test_cases where repo_id = ${repo.repoId}`,
    );
    expect(cases.rows).toEqual([{ name: "case 0" }]);
  });

  it("the hourly job removes uploads left incomplete for over an hour, and keeps younger ones", async () => {
    const repo = await repoWithSecret("stale-upload");
    const db = testDb();
    // Long before any other test's rows, so this job run (which sees the whole database) removes only these.
    const scheduledTime = new Date("2020-06-15T10:00:00Z");
    const ledger = async (key: string, receivedAt: Date) => {
      const id = crypto.randomUUID();
      await db.execute(sql`
        insert into ingestions (id, repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme,
          tests_total, tests_failed, tests_skipped, payload_sha256, response, received_at)
        values (${id}, ${repo.repoId}, ${key}, ${"a".repeat(40)}, 'r', 'vitest', 'v2', 2, 0, 0, ${"f".repeat(64)},
          '{}'::jsonb, ${receivedAt.toISOString()})`);
      await db.execute(sql`
        with cases as (
          insert into test_cases (repo_id, path, name, framework, first_seen_at, last_seen_at)
          values (${repo.repoId}, 'p', ${`only-${key}`}, 'vitest', ${receivedAt.toISOString()}, ${receivedAt.toISOString()})
          returning id)
        insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, created_at)
        select ${repo.repoId}, cases.id, ${id}, ${"a".repeat(40)}, 'r', 'pass', ${receivedAt.toISOString()},
          ${receivedAt.toISOString()} from cases`);
    };
    await db.execute(sql`select anchorpipe_ensure_test_run_partitions(0, ${"2020-06-01"}::date)`);
    await ledger("abandoned", new Date(scheduledTime.getTime() - 2 * 3_600_000));
    await ledger("in-flight", new Date(scheduledTime.getTime() - 10 * 60_000));
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: 2, test_cases: 2, test_runs: 2 });

    vi.spyOn(console, "log").mockImplementation(() => {});
    const controller = createScheduledController({ cron: "0 * * * *", scheduledTime: scheduledTime.getTime() });
    await worker.scheduled(controller, env);
    const left = await db.execute<{ key: string; name: string }>(sql`
      select i.idempotency_key as key, tc.name from ingestions i
      join test_runs tr on tr.ingestion_id = i.id join test_cases tc on tc.id = tr.test_case_id
      where i.repo_id = ${repo.repoId}`);
    expect(left.rows).toEqual([{ key: "in-flight", name: "only-in-flight" }]);
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: 1, test_cases: 1, test_runs: 1 });
    // Run again at the same scheduled time: nothing more to do.
    await worker.scheduled(controller, env);
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: 1, test_cases: 1, test_runs: 1 });
    // Leave no 2020 rows behind: the retention tests run the daily job over the whole shared database.
    await db.execute(sql`delete from repos where id = ${repo.repoId}`);
  });
});

describe("webhook-signature with many entries (defect 5)", () => {
  it("computes each secret's MAC once, however many entries the header has", async () => {
    const body = new TextEncoder().encode('{"x":1}');
    const at = new Date();
    const ts = Math.floor(at.getTime() / 1000);
    const secrets = [1, 2, 3].map((n) => ({
      id: `s${n}`,
      keyId: `k${n}`,
      secret: `whsec_${btoa(String.fromCharCode(...new Uint8Array(32).fill(n)))}`,
    }));
    const valid = await signV2(body, secrets[2].secret, "msg_1", ts);
    const entries = [
      ...Array(MAX_SIGNATURE_ENTRIES - 1).fill("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
      valid,
    ];
    const request = signedRequestFrom(
      new Headers({ "webhook-id": "msg_1", "webhook-timestamp": String(ts), "webhook-signature": entries.join(" ") }),
    )!;
    const sign = vi.spyOn(crypto.subtle, "sign");
    expect(await verifySignature(body, request, secrets, at, { allowV1: true })).toMatchObject({ ok: true });
    expect(sign).toHaveBeenCalledTimes(secrets.length);
  });

  it("refuses more entries than the limit before computing any MAC, with the usual 401", async () => {
    const repo = await repoWithSecret("many-entries");
    const body = payload(repo.repoId);
    const id = `msg_${crypto.randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000);
    const valid = await signV2(JSON.stringify(body), repo.secret, id, ts);
    const filler = Array(MAX_SIGNATURE_ENTRIES).fill("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    const headers = {
      "webhook-id": id,
      "webhook-timestamp": String(ts),
      "webhook-signature": [...filler, valid].join(" "),
    };
    const okId = `${id}-2`;
    const okHeaders = {
      ...headers,
      "webhook-id": okId,
      "webhook-signature": [...filler.slice(1), await signV2(JSON.stringify(body), repo.secret, okId, ts)].join(" "),
    };
    // The test helper signs every request it sends once itself; the Worker runs in this isolate, so its
    // MACs are counted too.
    const sign = vi.spyOn(crypto.subtle, "sign");
    const res = await upload(body, { ...repo, headers });
    expect(res.status).toBe(401);
    expect(sign).toHaveBeenCalledTimes(1);
    const reasons = await testDb().execute<{ reason: string }>(
      sql`select reason from auth_failure_tallies where subject_id = ${repo.repoId}`,
    );
    expect(reasons.rows).toEqual([{ reason: "too_many_signatures" }]);
    // The limit itself is allowed: one MAC for the repository's one secret.
    sign.mockClear();
    const ok = await upload(body, { ...repo, headers: okHeaders });
    expect(sign).toHaveBeenCalledTimes(2);
    expect(ok.status, await ok.clone().text()).toBe(200);
  });
});

describe("client address and user agent from headers (defect 7)", () => {
  it("any CF-Connecting-IP: never 5xx; stored only when it is an IP address", async () => {
    const repo = await repoWithSecret("client-ip");
    const ip = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.string({ maxLength: 60 }),
      fc.constantFrom(
        "999.1.1.1",
        "1.2.3",
        "::ffff:1.2.3.4",
        "fe80::1%eth0",
        "1.2.3.4, 5.6.7.8",
        "::1/128",
        " 10.0.0.1 ",
      ),
    );
    await fc.assert(
      fc.asyncProperty(ip, async (address) => {
        fc.pre(/^[\t\x20-\x7e]*$/.test(address));
        const res = await upload(payload(repo.repoId), { ...repo, headers: { "CF-Connecting-IP": address } });
        const body = await res.json<{ ingestionId: string }>();
        expect(res.status, JSON.stringify(body)).toBe(200);
      }),
      { numRuns: 60 },
    );
    const storedFor = async (address: string) => {
      const res = await upload(payload(repo.repoId), { ...repo, headers: { "CF-Connecting-IP": address } });
      const { ingestionId } = await res.json<{ ingestionId: string }>();
      const stored = await testDb().execute<{ ip: string | null }>(sql`
        select host(ip_address) as ip from audit_logs
        where action = 'ingestion_accepted' and metadata->>'ingestionId' = ${ingestionId}`);
      return stored.rows[0].ip;
    };
    expect(await storedFor("203.0.113.7")).toBe("203.0.113.7");
    expect(await storedFor("2001:db8::1")).toBe("2001:db8::1");
    for (const junk of ["999.1.1.1", "1.2.3", "fe80::1%eth0", "1.2.3.4, 5.6.7.8", "::1/128", "not-an-ip"]) {
      expect(await storedFor(junk), junk).toBeNull();
    }
  });
});

describe("ids are canonical at every service boundary (defect 8)", () => {
  it("a secret created with an upper-case repository id verifies uploads, whatever the caller's spelling", async () => {
    const [repo] = await testDb()
      .insert(repos)
      .values({ owner: `case-${crypto.randomUUID().slice(0, 8)}`, name: "upper" })
      .returning();
    const { secret, plaintext } = await createSecret(serviceContext(), await keyring(), {
      repoId: repo.id.toUpperCase(),
    });
    const [row] = await testDb().select().from(hmacSecrets).where(eq(hmacSecrets.id, secret.id));
    expect(row.repoId).toBe(repo.id);
    for (const spelling of [repo.id, repo.id.toUpperCase()]) {
      const res = await upload(payload(repo.id.toUpperCase()), { repoId: spelling, secret: plaintext });
      expect(res.status, await res.clone().text()).toBe(200);
    }
  });
});

describe("logs never carry the request's data (defect 9)", () => {
  it("a refused upload logs the SQLSTATE and the statement's first line, not names, output or addresses", async () => {
    const repo = await repoWithSecret("log-scan");
    const lines: string[] = [];
    for (const level of ["log", "warn", "error"] as const) {
      vi.spyOn(console, level).mockImplementation((line: string) => lines.push(String(line)));
    }
    const results = storedResults(40, true).map((r) => ({ ...r, failureDetails: "SECRET-OUTPUT-4711" }));
    const input = { ...storageInput(repo, results), ipAddress: "203.0.113.9", userAgent: "agent-0815" };
    const error = await storeIngestion(serviceContext(), input, 2 * 1024).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IngestionRefusedError);
    // What the route logs for it, and what the error handler logs for any database error.
    const { describeDbError } = await import("../../src/lib/db-errors");
    const described = describeDbError((error as IngestionRefusedError).cause);
    console.warn(JSON.stringify({ event: "ingestion.refused_by_database", ...described }));
    expect(described).toMatchObject({ sqlState: expect.stringMatching(/^22/) });
    const everything = lines.join("\n");
    for (const leaked of ["POISONED-NAME", "SECRET-OUTPUT-4711", "src/chunk", "203.0.113.9", "agent-0815", "case 3"]) {
      expect(everything).not.toContain(leaked);
    }
  });
});

describe("rate limits (defect 10)", () => {
  it("failed authentications per client address: 429 with Retry-After past the limit, and nothing written", async () => {
    const repo = await repoWithSecret("rate-auth");
    const strict = { ...env, AUTH_FAILURE_LIMITER: env.STRICT_AUTH_FAILURE_LIMITER };
    const address = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const bad = () =>
      upload(payload(repo.repoId), {
        ...repo,
        secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        bindings: strict,
        headers: { "CF-Connecting-IP": address },
      });
    // The limiter allows 5 per 60 s window; 12 requests sent at once span at most two windows, so at
    // least 2 of them are over the limit whenever they are served.
    const responses = await Promise.all(Array.from({ length: 12 }, bad));
    const statuses = responses.map((r) => r.status);
    const limited = responses.filter((r) => r.status === 429);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    for (const res of limited) {
      expect(res.headers.get("Retry-After")).toBe("60");
      expect((await errorBody(res)).error.code).toBe("rate_limited");
    }
    const counted = await testDb().execute<{ failures: number }>(
      sql`select coalesce(sum(failures), 0)::int as failures from auth_failure_tallies where subject_id = ${repo.repoId}`,
    );
    expect(counted.rows[0].failures).toBe(statuses.filter((s) => s === 401).length);
    // A valid upload from the same address is not held back: only failures count.
    expect(
      (await upload(payload(repo.repoId), { ...repo, bindings: strict, headers: { "CF-Connecting-IP": address } }))
        .status,
    ).toBe(200);
  });

  it("uploads per repository: 429 past the limit, stores exactly the accepted ones", async () => {
    const repo = await repoWithSecret("rate-upload");
    const strict = { ...env, UPLOAD_LIMITER: env.STRICT_UPLOAD_LIMITER };
    const responses = await Promise.all(
      Array.from({ length: 12 }, () => upload(payload(repo.repoId), { ...repo, bindings: strict })),
    );
    const accepted = responses.filter((r) => r.status === 200).length;
    const limited = responses.filter((r) => r.status === 429);
    expect(accepted + limited.length).toBe(12);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited[0].headers.get("Retry-After")).toBe("60");
    expect(await rowCounts(repo.repoId)).toMatchObject({ ingestions: accepted });
  });

  it("repeated failures become one audit row per repository, reason and minute, with a count", async () => {
    const repo = await repoWithSecret("aggregate");
    const at = new Date("2031-01-01T12:00:30Z");
    const ctx = { ...serviceContext(() => at), requestId: "agg" };
    const headers = new Headers({
      authorization: `Bearer ${repo.repoId}`,
      "x-fr-sig": "0".repeat(64),
    });
    for (let i = 0; i < 20; i++) {
      await expect(
        authenticateUpload(ctx, {
          body: new Uint8Array([1]),
          headers,
          keyring: await keyring(),
          client: { ipAddress: null, userAgent: null },
        }),
      ).rejects.toMatchObject({ code: "unauthorized" });
    }
    const db = testDb();
    const audit = await db.execute<{ reason: string }>(sql`
      select metadata->>'reason' as reason from audit_logs where action = 'hmac_auth_failure' and subject_id = ${repo.repoId}`);
    expect(audit.rows).toEqual([{ reason: "signature_mismatch" }]);
    const tally = await db.execute<{ failures: number; window: string }>(sql`
      select failures, window_start::text as window from auth_failure_tallies where subject_id = ${repo.repoId}`);
    expect(tally.rows).toHaveLength(1);
    expect(tally.rows[0].failures).toBe(20);
  });
});

describe("claims of the README and ADR 0004, proven (defect 12)", () => {
  it("the default body cap is 5 MiB", async () => {
    expect(env.INGESTION_MAX_BODY_BYTES).toBeUndefined();
    const repo = await repoWithSecret("cap");
    const base = JSON.stringify(payload(repo.repoId, { metadata: { pad: "" } }));
    const padTo = (size: number) => base.replace('"pad":""', `"pad":"${"x".repeat(size - base.length)}"`);
    const over = await upload(padTo(LIMITS.defaultMaxBodyBytes + 1), repo);
    expect(over.status).toBe(413);
    // At the cap the body is read (and then refused for its 5 MiB metadata, not its size).
    const at = await upload(padTo(LIMITS.defaultMaxBodyBytes), repo);
    expect(at.status).toBe(400);
    expect((await errorBody(at)).error.details?.[0].path).toBe("metadata");
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("metadata may serialise to 16,384 characters, not one more", async () => {
    const repo = await repoWithSecret("meta-cap");
    const sized = (chars: number) => ({ k: "v".repeat(chars - '{"k":""}'.length) });
    const result = (metadata: object) => [{ ...sampleTests(1)[0], metadata }];
    expect((await upload(payload(repo.repoId, {}, result(sized(16_384))), repo)).status).toBe(200);
    const res = await upload(payload(repo.repoId, {}, result(sized(16_385))), repo);
    expect(res.status).toBe(400);
    expect((await errorBody(res)).error.details?.[0].path).toBe("tests.0.metadata");
  });

  it("a JUnit report with more than 10,000 results is a 400 naming reports", async () => {
    const repo = await repoWithSecret("junit-10k");
    const cases = Array.from({ length: 10_001 }, (_, i) => `<testcase classname="c" name="t${i}"/>`).join("");
    const { tests: _, ...rest } = payload(repo.repoId);
    const res = await upload(
      { ...rest, framework: "junit", reports: [{ format: "junit", content: `<testsuite>${cases}</testsuite>` }] },
      repo,
    );
    expect(res.status).toBe(400);
    expect((await errorBody(res)).error.details).toEqual([
      { path: "reports", message: "the reports hold 10001 results; at most 10000 per upload" },
    ]);
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("an audit row for a missing Authorization, a revoked secret and an expired one", async () => {
    const db = testDb();
    // A minute of its own (one of a million after 2040), so this failure opens its window whatever other
    // tests do. The minute must stay within PostgreSQL's timestamptz range.
    const minute = crypto.getRandomValues(new Uint32Array(1))[0] % 1_000_000;
    const at = new Date(Date.UTC(2040, 0, 1) + minute * 60_000);
    const requestId = `claims-${crypto.randomUUID()}`;
    await expect(
      authenticateUpload(
        { ...serviceContext(() => at), requestId },
        {
          body: new Uint8Array([1]),
          headers: new Headers({ "x-fr-sig": "0".repeat(64) }),
          keyring: await keyring(),
          client: { ipAddress: null, userAgent: null },
        },
      ),
    ).rejects.toMatchObject({ code: "unauthorized" });
    const missing = await db.execute<{ reason: string; subject: string | null }>(sql`
      select metadata->>'reason' as reason, subject_id as subject from audit_logs
      where action = 'hmac_auth_failure' and request_id = ${requestId}`);
    expect(missing.rows).toEqual([{ reason: "missing_authorization", subject: null }]);

    const revoked = await repoWithSecret("claims-revoked");
    await db.update(hmacSecrets).set({ revoked: true, active: false }).where(eq(hmacSecrets.id, revoked.secretId));
    const expired = await repoWithSecret("claims-expired");
    await db
      .update(hmacSecrets)
      .set({ expiresAt: new Date(Date.now() - 60_000) })
      .where(eq(hmacSecrets.id, expired.secretId));
    for (const r of [revoked, expired]) {
      expect((await upload(payload(r.repoId), r)).status).toBe(401);
      const rows = await db.execute<{ reason: string }>(sql`
        select metadata->>'reason' as reason from audit_logs where action = 'hmac_auth_failure' and subject_id = ${r.repoId}`);
      expect(rows.rows).toEqual([{ reason: "no_active_secret" }]);
    }
  });
});
