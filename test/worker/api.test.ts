import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ROUTE_ACCESS } from "../../src/api/openapi";
import { createApp } from "../../src/app";
import { createSecret } from "../../src/services/secrets";
import { authenticateToken, createToken, LAST_USED_RESOLUTION_MS } from "../../src/services/tokens";
import { api, person, repoState, repoWithPeople } from "./api-support";
import { keyring, payload, sampleTests, serviceContext, testDb, upload } from "./ingestion-support";

type ErrorBody = { error: { code: string; message: string; requestId: string; details?: { path: string }[] } };
type Page<T> = { items: T[]; nextCursor: string | null };

async function auditActions(repoId: string, requestId: string) {
  const rows = await testDb().execute<{ action: string }>(
    sql`select action from audit_logs where subject_id = ${repoId} and request_id = ${requestId} order by action`,
  );
  return rows.rows.map((r) => r.action);
}

describe("identity", () => {
  it("GET /api/me: the caller, its repositories and roles; never the token", async () => {
    const { repoId, reader } = await repoWithPeople();
    const res = await api("GET", "/api/me", { token: reader.token });
    const me = await res.json<{ id: string; login: string; repositories: { id: string; role: string }[] }>();
    expect(me).toMatchObject({ id: reader.id, login: reader.login, isPlatformAdmin: false });
    expect(me.repositories).toEqual([expect.objectContaining({ id: repoId, role: "read_only" })]);
    expect(JSON.stringify(me)).not.toContain(reader.token);
    for (const [name, value] of Object.entries({
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
    })) {
      expect(res.headers.get(name)).toBe(value);
    }
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
  });

  it("a new token works, is stored only hashed, and log-out ends the session it was made for", async () => {
    const me = await person();
    const res = await api("POST", "/api/auth/tokens", { token: me.token, body: { days: 7, label: "laptop" } });
    expect(res.status).toBe(201);
    const { token, expiresAt } = await res.json<{ token: string; expiresAt: string }>();
    expect(token).toMatch(/^ap_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(6 * 86_400_000);
    const stored = await testDb().execute<{ n: number }>(
      sql`select count(*)::int as n from sessions where session_token = ${token}`,
    );
    expect(stored.rows[0].n).toBe(0);
    expect((await api("GET", "/api/me", { token })).status).toBe(200);
    expect((await api("DELETE", "/api/auth/session", { token })).status).toBe(204);
    expect((await api("GET", "/api/me", { token })).status).toBe(401);
    // The other token of the same person still works.
    expect((await api("GET", "/api/me", { token: me.token })).status).toBe(200);
  });

  it("an expired token is 401, audited once a minute without the token", async () => {
    const me = await person();
    await testDb().execute(sql`update sessions set expires = now() - interval '1 second' where user_id = ${me.id}`);
    const requestId = `expired-${crypto.randomUUID()}`;
    const res = await api("GET", "/api/me", { token: me.token, headers: { "X-Request-Id": requestId } });
    expect(res.status).toBe(401);
    const audit = await testDb().execute<{ metadata: string }>(
      sql`select metadata::text from audit_logs where action = 'login_failure' and created_at > now() - interval '2 minutes'`,
    );
    expect(audit.rows.length).toBeGreaterThan(0);
    expect(audit.rows.map((r) => r.metadata).join()).not.toContain(me.token.slice(3));
    const tally = await testDb().execute<{ n: number }>(
      sql`select coalesce(sum(failures), 0)::int as n from auth_failure_tallies where reason = 'expired_token'`,
    );
    expect(tally.rows[0].n).toBeGreaterThan(0);
  });

  it("last_used_at is written at most once a minute (clock injected)", async () => {
    const me = await person();
    let now = new Date("2030-01-01T00:00:00Z");
    const { token } = await createToken(
      serviceContext(() => now),
      { userId: me.id, days: 365 },
    );
    const lastUsed = async () =>
      (
        await testDb().execute<{ at: string | null }>(
          sql`select last_used_at::text as at from sessions where user_id = ${me.id} and created_at = ${"2030-01-01T00:00:00Z"}`,
        )
      ).rows[0].at;
    const use = () =>
      authenticateToken(
        serviceContext(() => now),
        token,
      );
    expect(await use()).toMatchObject({ ok: true });
    const first = await lastUsed();
    now = new Date(now.getTime() + LAST_USED_RESOLUTION_MS - 1);
    await use();
    expect(await lastUsed()).toBe(first);
    now = new Date(now.getTime() + 2);
    await use();
    expect(await lastUsed()).not.toBe(first);
  });
});

describe("roles", () => {
  it("the last admin cannot be demoted or removed (409), and nothing changes", async () => {
    const { repoId, admin } = await repoWithPeople();
    const before = await repoState(repoId);
    for (const [method, body] of [
      ["PUT", { role: "member" }],
      ["DELETE", undefined],
    ] as const) {
      const res = await api(method, `/api/repos/${repoId}/roles/${admin.id}`, { token: admin.token, body });
      expect(res.status).toBe(409);
      expect((await res.json<ErrorBody>()).error.code).toBe("conflict");
    }
    expect(await repoState(repoId)).toBe(before);
  });

  it("with two admins, one may step down; concurrent demotions of both leave one admin", async () => {
    const { repoId, admin, member } = await repoWithPeople();
    expect(
      (await api("PUT", `/api/repos/${repoId}/roles/${member.id}`, { token: admin.token, body: { role: "admin" } }))
        .status,
    ).toBe(200);
    const [a, b] = await Promise.all([
      api("PUT", `/api/repos/${repoId}/roles/${admin.id}`, { token: admin.token, body: { role: "read_only" } }),
      api("PUT", `/api/repos/${repoId}/roles/${member.id}`, { token: member.token, body: { role: "read_only" } }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const admins = await testDb().execute<{ n: number }>(
      sql`select count(*)::int as n from user_repo_roles where repo_id = ${repoId} and role = 'admin'`,
    );
    expect(admins.rows[0].n).toBe(1);
  });

  it("a role change writes role_audit_logs and audit_logs with the request id", async () => {
    const { repoId, admin, reader } = await repoWithPeople();
    const requestId = `role-${crypto.randomUUID()}`;
    const res = await api("PUT", `/api/repos/${repoId}/roles/${reader.id}`, {
      token: admin.token,
      body: { role: "member" },
      headers: { "X-Request-Id": requestId },
    });
    expect(res.status).toBe(200);
    expect(await auditActions(repoId, requestId)).toEqual(["role_assigned"]);
    const history = await api("GET", `/api/repos/${repoId}/roles/audit`, { token: admin.token });
    const items = (await history.json<Page<{ targetUserId: string; oldRole: string; newRole: string }>>()).items;
    expect(items[0]).toMatchObject({ targetUserId: reader.id, oldRole: "read_only", newRole: "member" });
    // Removing is audited too; a user without a role is 404.
    const removed = await api("DELETE", `/api/repos/${repoId}/roles/${reader.id}`, { token: admin.token });
    expect(removed.status).toBe(204);
    expect((await api("DELETE", `/api/repos/${repoId}/roles/${reader.id}`, { token: admin.token })).status).toBe(404);
    const unknownUser = await api("PUT", `/api/repos/${repoId}/roles/${crypto.randomUUID()}`, {
      token: admin.token,
      body: { role: "member" },
    });
    expect(unknownUser.status).toBe(404);
  });
});

describe("every mutation is audited in the same request", () => {
  it("repository, config and secrets", async () => {
    const { repoId, admin } = await repoWithPeople();
    const cases: [string, string, unknown, string[]][] = [
      ["PATCH", `/api/repos/${repoId}`, { visibility: "public" }, ["config_updated"]],
      [
        "PATCH",
        `/api/repos/${repoId}/config`,
        { scoringThreshold: 70, scoringWeights: { passRate: 0.5 } },
        ["config_updated"],
      ],
      ["POST", `/api/repos/${repoId}/secrets`, { name: "ci" }, ["hmac_secret_created"]],
    ];
    for (const [method, path, body, actions] of cases) {
      const requestId = `mut-${crypto.randomUUID()}`;
      const res = await api(method, path, { token: admin.token, body, headers: { "X-Request-Id": requestId } });
      expect(res.status, await res.clone().text()).toBeLessThan(300);
      expect(await auditActions(repoId, requestId)).toEqual(actions);
    }
    const config = await (await api("GET", `/api/repos/${repoId}/config`, { token: admin.token })).json();
    expect(config).toMatchObject({ scoringThreshold: 70, scoringWeights: { passRate: 0.5, volatility: 0.3 } });
    const created = await (await api("POST", `/api/repos/${repoId}/secrets`, { token: admin.token })).json<{
      secret: { id: string };
      plaintext: string;
    }>();
    expect(created.plaintext).toMatch(/^whsec_/);
    const listed = await (await api("GET", `/api/repos/${repoId}/secrets`, { token: admin.token })).text();
    expect(listed).not.toContain(created.plaintext.slice(6));
    for (const [path, action] of [
      [`/api/repos/${repoId}/secrets/${created.secret.id}/rotate`, "hmac_secret_rotated"],
      [`/api/repos/${repoId}/secrets/${created.secret.id}`, "hmac_secret_revoked"],
    ]) {
      const requestId = `sec-${crypto.randomUUID()}`;
      const method = action === "hmac_secret_revoked" ? "DELETE" : "POST";
      const res = await api(method, path, { token: admin.token, headers: { "X-Request-Id": requestId } });
      expect(res.status, await res.clone().text()).toBeLessThan(300);
      expect(await auditActions(repoId, requestId)).toEqual([action]);
    }
    const deleted = `del-${crypto.randomUUID()}`;
    expect(
      (await api("DELETE", `/api/repos/${repoId}`, { token: admin.token, headers: { "X-Request-Id": deleted } }))
        .status,
    ).toBe(204);
    expect(await auditActions(repoId, deleted)).toEqual(["other"]);
  });
});

describe("reads", () => {
  it("tests, a test with its runs, its history, ingestions and a commit's runs; only completed uploads", async () => {
    const { repoId, admin, reader } = await repoWithPeople();
    const { plaintext } = await createSecret(serviceContext(), await keyring(), { repoId });
    const commit = "d".repeat(40);
    const res = await upload(payload(repoId, { commit_sha: commit }, sampleTests(12)), { repoId, secret: plaintext });
    expect(res.status).toBe(200);
    // An upload that is still incomplete: its run must not show.
    await testDb().execute(sql`
      with ing as (
        insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
          tests_failed, tests_skipped, payload_sha256, response)
        values (${repoId}, 'incomplete', ${commit}, 'r', 'vitest', 'v2', 1, 0, 0, 'x', '{}') returning id)
      insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at)
      select ${repoId}, (select id from test_cases where repo_id = ${repoId} order by path, name limit 1), ing.id,
        ${commit}, 'r', 'fail', now() from ing`);

    const tests = await (
      await api("GET", `/api/repos/${repoId}/tests?path_prefix=src/module1&limit=50`, { token: reader.token })
    ).json<Page<{ id: string; path: string }>>();
    expect(tests.items.length).toBeGreaterThan(0);
    expect(tests.items.every((t) => t.path.startsWith("src/module1"))).toBe(true);
    const literal = await api("GET", `/api/repos/${repoId}/tests?path_prefix=${encodeURIComponent("src/module_")}`, {
      token: reader.token,
    });
    expect((await literal.json<Page<unknown>>()).items).toEqual([]);

    const first = (
      await (
        await api("GET", `/api/repos/${repoId}/tests?limit=1`, { token: reader.token })
      ).json<Page<{ id: string }>>()
    ).items[0];
    const one = await (await api("GET", `/api/repos/${repoId}/tests/${first.id}`, { token: reader.token })).json<{
      recentRuns: unknown[];
    }>();
    expect(one.recentRuns).toHaveLength(1);
    const runs = await (await api("GET", `/api/repos/${repoId}/tests/${first.id}/runs`, { token: reader.token })).json<
      Page<unknown>
    >();
    expect(runs.items).toHaveLength(1);
    const ingestions = await (await api("GET", `/api/repos/${repoId}/ingestions`, { token: admin.token })).json<
      Page<{ id: string; testsTotal: number }>
    >();
    expect(ingestions.items.map((i) => i.testsTotal)).toEqual([12]);
    const detail = await api("GET", `/api/repos/${repoId}/ingestions/${ingestions.items[0].id}`, {
      token: reader.token,
    });
    expect(await detail.json()).toMatchObject({ testsTotal: 12, flakyCandidates: 0 });
    const commitRuns = await (
      await api("GET", `/api/repos/${repoId}/commits/${commit.toUpperCase()}/runs?limit=200`, { token: reader.token })
    ).json<Page<unknown>>();
    expect(commitRuns.items).toHaveLength(12);
  });

  it("pages never repeat or skip a row while rows are added between pages", async () => {
    const { repoId, admin } = await repoWithPeople();
    const { plaintext } = await createSecret(serviceContext(), await keyring(), { repoId });
    const send = (i: number) =>
      upload(payload(repoId, { run_id: `page-${i}` }, sampleTests(1)), { repoId, secret: plaintext });
    for (let i = 0; i < 7; i++) expect((await send(i)).status).toBe(200);
    const seen: string[] = [];
    let cursor: string | null = null;
    let added = 7;
    do {
      const query = `?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page: Page<{ id: string }> = await (
        await api("GET", `/api/repos/${repoId}/ingestions${query}`, { token: admin.token })
      ).json();
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
      if (added < 10) expect((await send(added++)).status).toBe(200);
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    // Every upload that existed when paging began is there; the newer ones sort before the first page.
    const all = await testDb().execute<{ id: string }>(
      sql`select id from ingestions where repo_id = ${repoId} order by received_at, id limit 7`,
    );
    for (const row of all.rows) expect(seen).toContain(row.id);
  });

  it("rows a microsecond apart are neither skipped nor repeated between pages", async () => {
    const { repoId, reader } = await repoWithPeople();
    const at = "2031-03-03 10:00:00.123";
    await testDb().execute(sql`
      insert into notifications (repo_id, user_id, type, title, message, created_at)
      select ${repoId}, ${reader.id}, 'other', 'n' || g, 'm', ${at}::timestamptz + g * interval '1 microsecond'
      from generate_series(1, 9) g`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page<{ title: string }> = await (
        await api("GET", `/api/notifications?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: reader.token })
      ).json();
      seen.push(...page.items.map((n) => n.title));
      expect(JSON.stringify(page.items)).not.toContain("cursorAt");
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(["n9", "n8", "n7", "n6", "n5", "n4", "n3", "n2", "n1"]);
  });

  it("notifications: the caller's own, newest first; marking read is idempotent and audited", async () => {
    const { repoId, reader, admin } = await repoWithPeople();
    const made = await testDb().execute<{ id: string }>(sql`
      insert into notifications (repo_id, user_id, type, title, message, created_at)
      values (${repoId}, ${reader.id}, 'other', 'older', 'm', now() - interval '1 hour'),
             (${repoId}, ${reader.id}, 'other', 'newer', 'm', now()),
             (${repoId}, ${admin.id}, 'other', 'not yours', 'm', now())
      returning id, title`);
    const list = await (await api("GET", "/api/notifications?unread=true", { token: reader.token })).json<
      Page<{ title: string }>
    >();
    expect(list.items.map((n) => n.title)).toEqual(["newer", "older"]);
    const notYours = made.rows[2].id;
    expect((await api("POST", `/api/notifications/${notYours}/read`, { token: reader.token })).status).toBe(404);
    for (let i = 0; i < 2; i++) {
      const res = await api("POST", `/api/notifications/${made.rows[0].id}/read`, { token: reader.token });
      expect(await res.json()).toMatchObject({ read: true });
    }
  });

  it("the audit log filtered by action, and the global one for platform admins", async () => {
    const { repoId, admin } = await repoWithPeople();
    const filtered = await (
      await api("GET", `/api/repos/${repoId}/audit?action=role_assigned`, { token: admin.token })
    ).json<Page<{ action: string }>>();
    expect(filtered.items.length).toBeGreaterThanOrEqual(3);
    expect(filtered.items.every((i) => i.action === "role_assigned")).toBe(true);
    const operator = await person({ platformAdmin: true });
    const global = await api("GET", `/api/audit?action=role_assigned&limit=5`, { token: operator.token });
    expect((await global.json<Page<unknown>>()).items).toHaveLength(5);
  });
});

describe("rate limit per identity", () => {
  it("past the limit a person gets 429 with Retry-After; another person does not", async () => {
    const { env } = await import("cloudflare:workers");
    const strict = { ...env, API_LIMITER: env.STRICT_UPLOAD_LIMITER };
    const [busy, other] = [await person(), await person()];
    // A limit of 5 per 60 s window: 12 requests at once span at most two windows, so at least 2 are refused.
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => api("GET", "/api/me", { token: busy.token, bindings: strict })),
    );
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited[0].headers.get("Retry-After")).toBe("60");
    expect((await api("GET", "/api/me", { token: other.token, bindings: strict })).status).toBe(200);
  });
});

describe("read replica", () => {
  it("read endpoints use DATABASE_URL_READONLY (as anchorpipe_readonly); writes keep the primary", async () => {
    const { env } = await import("cloudflare:workers");
    expect(env.DATABASE_URL_READONLY).toContain("anchorpipe_readonly");
    const { repoId, admin } = await repoWithPeople();
    // The suite's own reads already go through the read-only role; with the replica unreachable, reads fail
    // over to 503 while writes still succeed, which shows which database each one uses.
    const replicaDown = { ...env, DATABASE_URL_READONLY: "postgres://anchorpipe_readonly:x@127.0.0.1:9/anchorpipe" };
    const read = await api("GET", `/api/repos/${repoId}/config`, { token: admin.token, bindings: replicaDown });
    expect(read.status).toBe(503);
    const write = await api("PATCH", `/api/repos/${repoId}/config`, {
      token: admin.token,
      body: { retentionDays: 60 },
      bindings: replicaDown,
    });
    expect(write.status, await write.clone().text()).toBe(200);
  });
});

describe("repository config", () => {
  it("keeps the GitHub App's artifact patterns beside the other settings, and null goes back to the defaults", async () => {
    const { repoId, admin } = await repoWithPeople();
    const read = async () => {
      const res = await api("GET", `/api/repos/${repoId}/config`, { token: admin.token });
      expect(res.status).toBe(200);
      return res.json<{ githubArtifactPatterns: string[]; scoringWeights: { passRate: number } }>();
    };
    expect((await read()).githubArtifactPatterns).toEqual(["*test-results*", "*junit*", "*report*"]);
    const set = async (body: unknown) => {
      const res = await api("PATCH", `/api/repos/${repoId}/config`, { token: admin.token, body });
      expect(res.status, await res.clone().text()).toBe(200);
      return res.json<{ githubArtifactPatterns: string[]; scoringWeights: { passRate: number } }>();
    };
    expect((await set({ githubArtifactPatterns: ["unit-*", "e2e-?"] })).githubArtifactPatterns).toEqual([
      "unit-*",
      "e2e-?",
    ]);
    // Other changes leave the patterns alone, and the patterns leave the weights alone.
    expect(await set({ scoringWeights: { passRate: 0.5 } })).toMatchObject({
      githubArtifactPatterns: ["unit-*", "e2e-?"],
      scoringWeights: { passRate: 0.5 },
    });
    expect(await set({ githubArtifactPatterns: null })).toMatchObject({
      githubArtifactPatterns: ["*test-results*", "*junit*", "*report*"],
      scoringWeights: { passRate: 0.5 },
    });
    expect((await read()).githubArtifactPatterns).toEqual(["*test-results*", "*junit*", "*report*"]);
  });

  it("answers generated artifact patterns with a 200 that stores them as sent, or a 4xx that changes nothing", async () => {
    const { repoId, admin } = await repoWithPeople();
    const pattern = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.string({ unit: "binary", maxLength: 20 }),
      fc.constantFrom("*", "?", "a\u0000b", "\ud800", "x".repeat(100), "x".repeat(101), " * "),
    );
    const value = fc.oneof(fc.array(pattern, { maxLength: 22 }), fc.constant(null), fc.anything({ maxDepth: 2 }));
    await fc.assert(
      fc.asyncProperty(value, async (patterns) => {
        const before = await repoState(repoId);
        const res = await api("PATCH", `/api/repos/${repoId}/config`, {
          token: admin.token,
          body: { githubArtifactPatterns: patterns },
        });
        expect(res.status, await res.clone().text()).toBeLessThan(500);
        if (res.status === 200) {
          const body = await res.json<{ githubArtifactPatterns: string[] }>();
          if (patterns !== null) expect(body.githubArtifactPatterns).toEqual(patterns);
        } else {
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(await repoState(repoId)).toBe(before);
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});

describe("bad input", () => {
  it("an unknown repository and an invisible one answer the same 404 body", async () => {
    const { repoId } = await repoWithPeople();
    const stranger = await person();
    const bodies = [];
    for (const id of [repoId, crypto.randomUUID()]) {
      const res = await api("GET", `/api/repos/${id}/tests`, { token: stranger.token });
      expect(res.status).toBe(404);
      const { error } = await res.json<ErrorBody>();
      bodies.push({ code: error.code, message: error.message, keys: Object.keys(error).sort() });
    }
    expect(bodies[0]).toEqual(bodies[1]);
  });

  it("a validation error for every parameter, query and body field, naming it", async () => {
    const { repoId, admin } = await repoWithPeople();
    const cases: [string, string, unknown, string][] = [
      ["GET", "/api/repos/not-a-uuid", undefined, "repoId"],
      ["GET", `/api/repos/${repoId}/tests/nope`, undefined, "testId"],
      ["GET", `/api/repos/${repoId}/tests/${crypto.randomUUID()}/runs?cursor=%%%`, undefined, "cursor"],
      ["GET", `/api/repos/${repoId}/ingestions/x`, undefined, "ingestionId"],
      ["GET", `/api/repos/${repoId}/commits/xyz/runs`, undefined, "sha"],
      ["GET", `/api/repos/${repoId}/tests?limit=0`, undefined, "limit"],
      ["GET", `/api/repos/${repoId}/tests?limit=201`, undefined, "limit"],
      ["GET", `/api/repos/${repoId}/tests?cursor=eyJ4IjoxfQ`, undefined, "cursor"],
      ["GET", `/api/repos/${repoId}/tests?path_prefix=%00`, undefined, "path_prefix"],
      ["GET", `/api/repos/${repoId}/audit?action=nope`, undefined, "action"],
      ["GET", `/api/repos/${repoId}/audit?actor=1`, undefined, "actor"],
      ["GET", `/api/repos/${repoId}/audit?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z`, undefined, "from"],
      ["GET", "/api/notifications?unread=maybe", undefined, "unread"],
      ["POST", "/api/repos", { owner: "-bad-", name: "x" }, "owner"],
      ["POST", "/api/repos", { owner: "ok", name: "a b" }, "name"],
      ["POST", "/api/repos", { owner: "ok", name: "x", extra: 1 }, "(root)"],
      ["PATCH", `/api/repos/${repoId}`, {}, "(root)"],
      ["PATCH", `/api/repos/${repoId}`, { visibility: "secret" }, "visibility"],
      ["PATCH", `/api/repos/${repoId}/config`, { retentionDays: 0 }, "retentionDays"],
      ["PATCH", `/api/repos/${repoId}/config`, { scoringThreshold: 101 }, "scoringThreshold"],
      ["PATCH", `/api/repos/${repoId}/config`, { scoringWeights: { passRate: 2 } }, "scoringWeights.passRate"],
      ["PATCH", `/api/repos/${repoId}/config`, { githubArtifactPatterns: [] }, "githubArtifactPatterns"],
      ["PATCH", `/api/repos/${repoId}/config`, { githubArtifactPatterns: ["a\u0000b"] }, "githubArtifactPatterns.0"],
      [
        "PATCH",
        `/api/repos/${repoId}/config`,
        { githubArtifactPatterns: ["x".repeat(101)] },
        "githubArtifactPatterns.0",
      ],
      [
        "PATCH",
        `/api/repos/${repoId}/config`,
        { githubArtifactPatterns: Array(21).fill("*") },
        "githubArtifactPatterns",
      ],
      ["PUT", `/api/repos/${repoId}/roles/${admin.id}`, { role: "owner" }, "role"],
      ["PUT", `/api/repos/${repoId}/roles/abc`, { role: "member" }, "userId"],
      ["POST", "/api/auth/tokens", { days: 366 }, "days"],
      ["POST", `/api/repos/${repoId}/secrets`, { expiresAt: "tomorrow" }, "expiresAt"],
    ];
    for (const [method, path, body, field] of cases) {
      const before = await repoState(repoId);
      const res = await api(method, path, { token: admin.token, body });
      const { error } = await res.json<ErrorBody>();
      expect(res.status, `${method} ${path}: ${JSON.stringify(error)}`).toBe(400);
      expect(error.code).toBe("validation_failed");
      expect(
        error.details?.map((d) => d.path),
        `${method} ${path}`,
      ).toContain(field);
      expect(await repoState(repoId)).toBe(before);
    }
  });

  it("an oversized body is 413 before it is read, and changes nothing", async () => {
    const { repoId, admin } = await repoWithPeople();
    const before = await repoState(repoId);
    const huge = JSON.stringify({ retentionDays: 40, pad: "x".repeat(70 * 1024) });
    const res = await fetchRaw("PATCH", `/api/repos/${repoId}/config`, admin.token, huge);
    expect(res.status).toBe(413);
    expect((await res.json<ErrorBody>()).error.code).toBe("payload_too_large");
    expect(await repoState(repoId)).toBe(before);
  });

  it("malformed JSON bodies are a 400, never a 5xx", async () => {
    const { repoId, admin } = await repoWithPeople();
    for (const raw of ["{", "[]", "null", '"x"', "\u0000"]) {
      const res = await fetchRaw("PATCH", `/api/repos/${repoId}/config`, admin.token, raw);
      expect(res.status, raw).toBe(400);
    }
  });
});

async function fetchRaw(method: string, path: string, token: string, raw: string) {
  const { exports } = await import("cloudflare:workers");
  return exports.default.fetch(`http://worker${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: method === "GET" || method === "HEAD" ? undefined : raw,
  });
}

describe("properties", () => {
  it("any query string and any JSON body on every route: never 5xx", async () => {
    const { repoId, admin, reader } = await repoWithPeople();
    const { secret, plaintext } = await createSecret(serviceContext(), await keyring(), { repoId });
    expect((await upload(payload(repoId, {}, sampleTests(3)), { repoId, secret: plaintext })).status).toBe(200);
    const [ids] = (
      await testDb().execute<{ test: string; ingestion: string; sha: string }>(sql`
        select tr.test_case_id as test, tr.ingestion_id as ingestion, tr.commit_sha as sha from test_runs tr
        where tr.repo_id = ${repoId} limit 1`)
    ).rows;
    // Every route the API declares (createApp registers them), its path parameters real ids or junk.
    createApp();
    const real: Record<string, string> = {
      repoId,
      userId: reader.id,
      secretId: secret.id,
      testId: ids.test,
      ingestionId: ids.ingestion,
      sha: ids.sha,
      id: crypto.randomUUID(),
    };
    const routes = [...ROUTE_ACCESS.entries()]
      .filter(([, access]) => access !== "public" && access !== "signed")
      .map(([route]) => route.split(" "));
    const junk = fc.oneof(fc.string({ minLength: 1 }), fc.uuid(), fc.constantFrom("%00", "..", "__proto__"));
    const paths = fc.tuple(fc.constantFrom(...routes), junk, fc.boolean()).map(([[method, template], bad, useBad]) => ({
      method,
      path: template.replace(/\{(\w+)\}/g, (_, name: string) =>
        useBad && name !== "repoId" ? encodeURIComponent(bad) : (real[name] ?? bad),
      ),
    }));
    const key = fc.constantFrom(
      "limit",
      "cursor",
      "path_prefix",
      "q",
      "tag",
      "action",
      "actor",
      "from",
      "to",
      "unread",
      "class",
      "owner",
      "sort",
      "status",
      "x",
    );
    const value = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.integer().map(String),
      fc.constantFrom("-1", "1e9", "", "%", "eyJ9"),
    );
    await fc.assert(
      fc.asyncProperty(
        paths,
        fc.array(fc.tuple(key, value), { maxLength: 4 }),
        fc.option(fc.jsonValue({ maxDepth: 3 })),
        async ({ method, path }, query, body) => {
          // Deleting the repository or the caller's session would end the run's other cases.
          fc.pre(!(method === "DELETE" && (path === `/api/repos/${repoId}` || path === "/api/auth/session")));
          const search = new URLSearchParams(query).toString();
          const res = await fetchRaw(
            method,
            `${path}${search ? `?${search}` : ""}`,
            admin.token,
            JSON.stringify(body ?? null),
          );
          const text = await res.text();
          expect(res.status, `${method} ${path}?${search}: ${text.slice(0, 300)}`).toBeLessThan(500);
        },
      ),
      { numRuns: 300 },
    );
  });
});
