import { env, exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { ROUTE_ACCESS } from "../../src/api/openapi";
import { createApp } from "../../src/app";
import { signDownload } from "../../src/services/privacy/links";
import { exportKey } from "../../src/services/privacy/process";
import { createRepo } from "../../src/services/repos";
import { setRole } from "../../src/services/roles";
import { createSecret } from "../../src/services/secrets";
import { createToken } from "../../src/services/tokens";
import { api, type Person, person, repoState } from "./api-support";
import { keyring, payload, sampleTests, serviceContext, testDb, upload } from "./ingestion-support";

/**
 * The RBAC matrix: every route × every kind of caller, asserting the status and, for writes, that the
 * repository's rows changed only when the caller was allowed to change them. The expected access of each
 * route is written here from spec/api.md, independently of the code; a route the app serves without an
 * entry here fails the first test.
 */

type Caller = "anonymous" | "expired" | "read_only" | "member" | "admin" | "otherAdmin" | "platformAdmin";
const CALLERS: Caller[] = ["anonymous", "expired", "read_only", "member", "admin", "otherAdmin", "platformAdmin"];
type Need = "user" | "read" | "write" | "admin" | "platform";

interface World {
  repoId: string;
  secretId: string;
  testId: string;
  ingestionId: string;
  commitSha: string;
  notificationId: (userId: string) => Promise<string>;
  targetUserId: string;
}

interface Entry {
  need: Need;
  /** Changes rows of the repository (checked unchanged when refused, changed when allowed). */
  writes?: boolean;
  path: (w: World) => string;
  body?: (w: World) => unknown;
  /** A text/plain body instead of JSON. */
  text?: string;
  /** A path made for the caller (a resource of their own), instead of `path`. */
  pathFor?: (w: World, userId: string) => Promise<string>;
}

const MATRIX: Record<string, Entry> = {
  "GET /api/me": { need: "user", path: () => "/api/me" },
  "POST /api/auth/tokens": { need: "user", path: () => "/api/auth/tokens", body: () => ({ days: 2 }) },
  "DELETE /api/auth/session": { need: "user", path: () => "/api/auth/session" },
  "GET /api/repos": { need: "user", path: () => "/api/repos" },
  "POST /api/repos": {
    need: "user",
    path: () => "/api/repos",
    body: () => ({ owner: `o${crypto.randomUUID().slice(0, 8)}`, name: "new" }),
  },
  "GET /api/repos/{repoId}": { need: "read", path: (w) => `/api/repos/${w.repoId}` },
  "PATCH /api/repos/{repoId}": {
    need: "write",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}`,
    body: () => ({ defaultBranch: "trunk" }),
  },
  "DELETE /api/repos/{repoId}": { need: "admin", writes: true, path: (w) => `/api/repos/${w.repoId}` },
  "GET /api/repos/{repoId}/roles": { need: "read", path: (w) => `/api/repos/${w.repoId}/roles` },
  "PUT /api/repos/{repoId}/roles/{userId}": {
    need: "admin",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/roles/${w.targetUserId}`,
    body: () => ({ role: "member" }),
  },
  "DELETE /api/repos/{repoId}/roles/{userId}": {
    need: "admin",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/roles/${w.targetUserId}`,
  },
  "GET /api/repos/{repoId}/roles/audit": { need: "admin", path: (w) => `/api/repos/${w.repoId}/roles/audit` },
  "GET /api/repos/{repoId}/secrets": { need: "admin", path: (w) => `/api/repos/${w.repoId}/secrets` },
  "POST /api/repos/{repoId}/secrets": {
    need: "admin",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/secrets`,
    body: () => ({ name: "ci" }),
  },
  "POST /api/repos/{repoId}/secrets/{secretId}/rotate": {
    need: "admin",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/secrets/${w.secretId}/rotate`,
  },
  "DELETE /api/repos/{repoId}/secrets/{secretId}": {
    need: "admin",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/secrets/${w.secretId}`,
  },
  "GET /api/repos/{repoId}/config": { need: "read", path: (w) => `/api/repos/${w.repoId}/config` },
  "PATCH /api/repos/{repoId}/config": {
    need: "write",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/config`,
    body: () => ({ retentionDays: 45 }),
  },
  "GET /api/repos/{repoId}/tests": { need: "read", path: (w) => `/api/repos/${w.repoId}/tests` },
  "GET /api/repos/{repoId}/tests/{testId}": { need: "read", path: (w) => `/api/repos/${w.repoId}/tests/${w.testId}` },
  "GET /api/repos/{repoId}/tests/{testId}/runs": {
    need: "read",
    path: (w) => `/api/repos/${w.repoId}/tests/${w.testId}/runs`,
  },
  "GET /api/repos/{repoId}/ingestions": { need: "read", path: (w) => `/api/repos/${w.repoId}/ingestions` },
  "GET /api/repos/{repoId}/ingestions/{ingestionId}": {
    need: "read",
    path: (w) => `/api/repos/${w.repoId}/ingestions/${w.ingestionId}`,
  },
  "GET /api/repos/{repoId}/commits/{sha}/runs": {
    need: "read",
    path: (w) => `/api/repos/${w.repoId}/commits/${w.commitSha}/runs`,
  },
  "GET /api/repos/{repoId}/flaky-tests": { need: "read", path: (w) => `/api/repos/${w.repoId}/flaky-tests` },
  "GET /api/repos/{repoId}/tests/{testId}/score": {
    need: "read",
    path: (w) => `/api/repos/${w.repoId}/tests/${w.testId}/score`,
  },
  // Also open to the repository's signature (test/worker/quarantine.test.ts); with tokens, like any read.
  "GET /api/repos/{repoId}/quarantine": { need: "read", path: (w) => `/api/repos/${w.repoId}/quarantine` },
  "PUT /api/repos/{repoId}/codeowners": {
    need: "write",
    writes: true,
    path: (w) => `/api/repos/${w.repoId}/codeowners`,
    text: "*.ts @org/team\n",
  },
  "GET /api/notifications": { need: "user", path: () => "/api/notifications" },
  "POST /api/notifications/{id}/read": { need: "user", path: () => "" },
  "GET /api/repos/{repoId}/audit": { need: "admin", path: (w) => `/api/repos/${w.repoId}/audit` },
  "GET /api/audit": { need: "platform", path: () => "/api/audit?action=role_assigned" },
  "POST /api/me/data-requests": { need: "user", path: () => "/api/me/data-requests", body: () => ({ type: "export" }) },
  "GET /api/me/data-requests": { need: "user", path: () => "/api/me/data-requests" },
  "GET /api/me/data-requests/{requestId}": {
    need: "user",
    path: () => "",
    pathFor: async (_w, userId) => `/api/me/data-requests/${await completedExport(userId)}`,
  },
  "POST /api/me/data-requests/{requestId}/download-link": {
    need: "user",
    path: () => "",
    pathFor: async (_w, userId) => `/api/me/data-requests/${await completedExport(userId)}/download-link`,
  },
  "GET /api/me/data-requests/{requestId}/download": {
    need: "user",
    path: () => "",
    pathFor: async (_w, userId) => {
      const requestId = await completedExport(userId);
      const link = await signDownload(env.HMAC_KEK as string, { requestId, userId, now: new Date() });
      return `/api/me/data-requests/${requestId}/download?expires=${link.expires}&signature=${link.signature}`;
    },
  },
  "GET /api/admin/data-requests": { need: "platform", path: () => "/api/admin/data-requests" },
  "PATCH /api/admin/data-requests/{requestId}": {
    need: "platform",
    path: () => "",
    pathFor: async () => `/api/admin/data-requests/${await completedExport(people.target.id, "pending")}`,
    body: () => ({ decision: "reject", reason: "matrix" }),
  },
  // Not behind personal tokens: the signed upload and the public documents and health checks.
  "POST /api/ingestion": { need: "user", path: () => "" },
  "POST /api/webhooks/github": { need: "user", path: () => "" },
  "GET /api/health": { need: "user", path: () => "" },
  "GET /api/health/db": { need: "user", path: () => "" },
  "GET /api/health/live": { need: "user", path: () => "" },
  "GET /api/version": { need: "user", path: () => "" },
  "GET /api/openapi.json": { need: "user", path: () => "" },
};
const NOT_TOKEN_ROUTES = new Set([
  "POST /api/ingestion",
  "POST /api/webhooks/github",
  "GET /api/health",
  "GET /api/health/db",
  "GET /api/health/live",
  "GET /api/version",
  "GET /api/openapi.json",
]);

/** What the spec says each caller gets: "ok" or the refusal's status. */
function expected(need: Need, caller: Caller): "ok" | 401 | 403 | 404 {
  if (caller === "anonymous" || caller === "expired") return 401;
  if (need === "user") return "ok";
  if (need === "platform") return caller === "platformAdmin" ? "ok" : 403;
  const role = { read_only: "read_only", member: "member", admin: "admin" }[caller as string];
  if (!role) return 404; // no role on this repository: invisible, exactly like a missing one
  if (need === "read") return "ok";
  if (need === "write") return role === "read_only" ? 403 : "ok";
  return role === "admin" ? "ok" : 403;
}

let people: Record<"admin" | "member" | "reader" | "otherAdmin" | "platformAdmin" | "expired" | "target", Person>;

beforeAll(async () => {
  const [admin, member, reader, otherAdmin, platformAdmin, expired, target] = await Promise.all([
    person(),
    person(),
    person(),
    person(),
    person({ platformAdmin: true }),
    person(),
    person(),
  ]);
  people = { admin, member, reader, otherAdmin, platformAdmin, expired, target };
  await createRepo(serviceContext(), otherAdmin.id, { owner: `other-${otherAdmin.login}`, name: "theirs" });
  await testDb().execute(sql`update sessions set expires = now() - interval '1 minute' where user_id = ${expired.id}`);
});

/** A repository of its own for one request: admin, member, read_only, a secret, an upload, a target user. */
async function world(): Promise<World> {
  const ctx = serviceContext();
  const repo = await createRepo(ctx, people.admin.id, { owner: `m-${crypto.randomUUID().slice(0, 12)}`, name: "r" });
  await setRole(ctx, { actorId: people.admin.id, repoId: repo.id, userId: people.member.id, role: "member" });
  await setRole(ctx, { actorId: people.admin.id, repoId: repo.id, userId: people.reader.id, role: "read_only" });
  await setRole(ctx, { actorId: people.admin.id, repoId: repo.id, userId: people.target.id, role: "read_only" });
  const { secret, plaintext } = await createSecret(ctx, await keyring(), { repoId: repo.id });
  const commitSha = "c".repeat(40);
  const res = await upload(payload(repo.id, { commit_sha: commitSha }, sampleTests(2)), {
    repoId: repo.id,
    secret: plaintext,
  });
  const { ingestionId } = await res.json<{ ingestionId: string }>();
  const tests = await testDb().execute<{ id: string }>(
    sql`select id from test_cases where repo_id = ${repo.id} limit 1`,
  );
  return {
    repoId: repo.id,
    secretId: secret.id,
    testId: tests.rows[0].id,
    ingestionId,
    commitSha,
    targetUserId: people.target.id,
    notificationId: async (userId) => {
      const made = await testDb().execute<{ id: string }>(sql`
        insert into notifications (repo_id, user_id, type, title, message)
        values (${repo.id}, ${userId}, 'other', 'hello', 'world') returning id`);
      return made.rows[0].id;
    },
  };
}

/** A data request of the user's (a completed export, its archive in the bucket, unless `status` says otherwise). */
async function completedExport(userId: string, status: "completed" | "pending" = "completed"): Promise<string> {
  const id = crypto.randomUUID();
  const exportData = status === "completed" ? JSON.stringify({ key: exportKey(id) }) : null;
  await testDb().execute(sql`
    insert into data_subject_requests (id, user_id, type, status, export_data, processed_at)
    values (${id}, ${userId}, 'export', ${status}, ${exportData}::jsonb, ${status === "completed" ? sql`now()` : sql`null`})`);
  if (status === "completed") await (env.ARCHIVE as R2Bucket).put(exportKey(id), "PK");
  return id;
}

/** A fresh token for the caller, so a log-out in one request does not affect the next. */
async function tokenOf(caller: Caller): Promise<string | undefined> {
  if (caller === "anonymous") return undefined;
  if (caller === "expired") {
    const { token } = await createToken(serviceContext(), { userId: people.expired.id });
    await testDb().execute(
      sql`update sessions set expires = now() - interval '1 second' where user_id = ${people.expired.id}`,
    );
    return token;
  }
  const who = {
    read_only: people.reader,
    member: people.member,
    admin: people.admin,
    otherAdmin: people.otherAdmin,
    platformAdmin: people.platformAdmin,
  }[caller];
  return (await createToken(serviceContext(), { userId: who.id })).token;
}

const userIdOf = (caller: Caller) =>
  ({
    read_only: people.reader,
    member: people.member,
    admin: people.admin,
    otherAdmin: people.otherAdmin,
    platformAdmin: people.platformAdmin,
    expired: people.expired,
    anonymous: people.target,
  })[caller].id;

describe("the RBAC matrix", () => {
  it("covers every route the app serves", () => {
    createApp();
    const served = [...ROUTE_ACCESS.keys()].sort();
    expect(served.filter((route) => !(route in MATRIX))).toEqual([]);
    expect(Object.keys(MATRIX).filter((route) => !ROUTE_ACCESS.has(route))).toEqual([]);
  });

  const cases = Object.entries(MATRIX)
    .filter(([route]) => !NOT_TOKEN_ROUTES.has(route))
    .flatMap(([route, entry]) => CALLERS.map((caller) => [route, caller, entry] as const));

  it.each(cases)("%s as %s", async (route, caller, entry) => {
    const w = await world();
    const method = route.split(" ")[0];
    const path = entry.pathFor
      ? await entry.pathFor(w, userIdOf(caller))
      : route === "POST /api/notifications/{id}/read"
        ? `/api/notifications/${await w.notificationId(userIdOf(caller))}/read`
        : entry.path(w);
    const before = await repoState(w.repoId);
    const token = await tokenOf(caller);
    const res =
      entry.text === undefined
        ? await api(method, path, { token, body: entry.body?.(w) })
        : await exports.default.fetch(`http://worker${path}`, {
            method,
            headers: { "Content-Type": "text/plain", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
            body: entry.text,
          });
    const text = await res.text();
    const want = expected(entry.need, caller);
    if (want === "ok") {
      expect(res.status, text).toBeGreaterThanOrEqual(200);
      expect(res.status, text).toBeLessThan(300);
      if (entry.writes) expect(await repoState(w.repoId)).not.toBe(before);
    } else {
      expect(res.status, text).toBe(want);
      expect(JSON.parse(text).error.code).toBe({ 401: "unauthorized", 403: "forbidden", 404: "not_found" }[want]);
      expect(await repoState(w.repoId)).toBe(before);
    }
  });
});
