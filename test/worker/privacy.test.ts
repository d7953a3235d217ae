import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { strFromU8, unzipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { repos } from "../../src/db/schema";
import { ConfigError, loadConfig } from "../../src/env";
import { privacyRequests } from "../../src/jobs/privacy-requests";
import { sha256Hex } from "../../src/lib/encoding";
import { checkHealth } from "../../src/services/health";
import { ERASURE_SKIPPED_COLUMNS, needleMatcher } from "../../src/services/privacy/archive-erasure";
import { EXPORT_TABLES } from "../../src/services/privacy/export";
import { dataRequestsHealth } from "../../src/services/privacy/health";
import { signDownload } from "../../src/services/privacy/links";
import { exportKey, processApproved } from "../../src/services/privacy/process";
import { REMINDER_EVENT } from "../../src/services/privacy/reminders";
import { createRepo } from "../../src/services/repos";
import { archiveRepoMonth } from "../../src/services/retention/archive";
import { readManifest } from "../../src/services/retention/manifest";
import { restoreArchivedMonth } from "../../src/services/retention/restore";
import { setRole } from "../../src/services/roles";
import { createSecret } from "../../src/services/secrets";
import { api, type Person, person } from "./api-support";
import { keyring, payload, serviceContext, testDb, upload } from "./ingestion-support";

const DAY = 24 * 60 * 60 * 1000;
const db = testDb();

type RequestBody = {
  id: string;
  userId: string;
  type: string;
  status: string;
  requestedAt: string;
  dueAt: string;
  overdue: boolean;
  exportAvailable: boolean;
  events: { status: string; message: string | null }[];
};

async function ask(who: Person, type: "export" | "delete") {
  const res = await api("POST", "/api/me/data-requests", { token: who.token, body: { type } });
  return { res, body: await res.json<RequestBody & { error?: { code: string; message: string } }>() };
}

async function decide(admin: Person, id: string, decision: "approve" | "reject", reason = "identity checked") {
  return api("PATCH", `/api/admin/data-requests/${id}`, { token: admin.token, body: { decision, reason } });
}

/** The daily job, as the scheduler runs it, at `at`. */
async function runJob(at = new Date()) {
  return privacyRequests.run({ config: loadConfig(env), env, db, scheduledTime: at });
}

async function withEmail(who: Person) {
  const email = `${who.login}@mail.example`;
  await db.execute(
    sql`update users set email = ${email}, github_id = ${`gh${who.login.slice(5)}77`} where id = ${who.id}`,
  );
  return email;
}

describe("data subject requests", () => {
  it("are created with their deadline from requested_at, an event and an audit row naming nobody but by id", async () => {
    const alice = await person();
    const email = await withEmail(alice);
    const { res, body } = await ask(alice, "export");
    expect(res.status).toBe(201);
    expect(body).toMatchObject({ userId: alice.id, type: "export", status: "pending", overdue: false });
    expect(new Date(body.dueAt).getTime() - new Date(body.requestedAt).getTime()).toBe(30 * DAY);
    expect(body.events).toEqual([expect.objectContaining({ status: "pending", message: "requested" })]);

    const audit = await db.execute<{ actor_id: string; action: string; row: string }>(
      sql`select actor_id, action, to_jsonb(a)::text as row from audit_logs a where subject = 'dsr' and subject_id = ${body.id}`,
    );
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0]).toMatchObject({ actor_id: alice.id, action: "dsr_export_request" });
    expect(audit.rows[0].row).not.toContain(email);
    expect(audit.rows[0].row).not.toContain(alice.login);

    // One open request of a type at a time.
    const again = await ask(alice, "export");
    expect(again.res.status).toBe(409);

    // Listed and read by their owner only.
    const list = await api("GET", "/api/me/data-requests", { token: alice.token });
    expect((await list.json<{ items: RequestBody[] }>()).items.map((r) => r.id)).toEqual([body.id]);
    expect((await api("GET", `/api/me/data-requests/${body.id}`, { token: alice.token })).status).toBe(200);
    const bob = await person();
    expect((await api("GET", `/api/me/data-requests/${body.id}`, { token: bob.token })).status).toBe(404);
    const bobs = await api("GET", "/api/me/data-requests", { token: bob.token });
    expect((await bobs.json<{ items: RequestBody[] }>()).items).toEqual([]);
  });

  it("are approved or rejected by a platform admin with a reason, each step an event and an audit row", async () => {
    const admin = await person({ platformAdmin: true });
    const alice = await person();
    const { body } = await ask(alice, "export");
    const refused = await decide(alice, body.id, "approve");
    expect(refused.status).toBe(403);
    expect(
      (
        await api("PATCH", `/api/admin/data-requests/${body.id}`, {
          token: admin.token,
          body: { decision: "reject" },
        })
      ).status,
    ).toBe(400);

    const rejected = await decide(admin, body.id, "reject", "could not verify the account holder");
    expect(rejected.status).toBe(200);
    const view = await rejected.json<RequestBody>();
    expect(view.status).toBe("rejected");
    expect(view.events.map((e) => [e.status, e.message])).toEqual([
      ["pending", "requested"],
      ["rejected", "rejected: could not verify the account holder"],
    ]);
    expect((await decide(admin, body.id, "approve")).status).toBe(409);

    const audit = await db.execute<{ actor_id: string; metadata: Record<string, string> }>(sql`
      select actor_id, metadata from audit_logs where subject = 'dsr' and subject_id = ${body.id} and action = 'other'`);
    expect(audit.rows).toEqual([{ actor_id: admin.id, metadata: { type: "export", from: "pending", to: "rejected" } }]);

    const listed = await api("GET", "/api/admin/data-requests?status=rejected", { token: admin.token });
    expect((await listed.json<{ items: RequestBody[] }>()).items.map((r) => r.id)).toContain(body.id);
  });

  it("overdue open requests are counted and shown in /api/health", async () => {
    const alice = await person();
    const { body } = await ask(alice, "export");
    const later = new Date(new Date(body.dueAt).getTime() + 1000);
    const overdue = await dataRequestsHealth(db, later);
    expect(overdue.overdue).toBeGreaterThanOrEqual(1);
    const view = await api("GET", `/api/me/data-requests/${body.id}`, { token: alice.token });
    expect((await view.json<RequestBody>()).overdue).toBe(false);

    // /api/health's jobs part carries them: overdue ones make it warn (seen at a later clock, so the shared
    // database is not left with an overdue request), those due within 7 days are counted.
    const soon = await checkHealth({ db, now: () => new Date(new Date(body.dueAt).getTime() - 2 * DAY) });
    expect((soon.checks.jobs.dataRequests as { dueSoon: number }).dueSoon).toBeGreaterThanOrEqual(1);
    const health = await checkHealth({ db, now: () => later });
    expect(health.checks.jobs.dataRequests).toMatchObject({ status: "warn" });
    expect((health.checks.jobs.dataRequests as { overdue: number }).overdue).toBeGreaterThanOrEqual(1);
    expect(["warn", "fail"]).toContain(health.checks.jobs.status);
    const live = await api("GET", "/api/health");
    const report = await live.json<{ checks: { jobs: { dataRequests: { status: string; overdue: number } } } }>();
    expect(report.checks.jobs.dataRequests).toMatchObject({ overdue: expect.any(Number) });
    await db.execute(sql`update data_subject_requests set status = 'rejected' where id = ${body.id}`);
  });
});

type NotificationBody = {
  id: string;
  repoId: string | null;
  type: string;
  title: string;
  message: string;
  severity: string;
  actionUrl: string | null;
};

/** Every notification GET /api/notifications gives `who`, all pages. */
async function notificationsOf(who: Person): Promise<NotificationBody[]> {
  const all: NotificationBody[] = [];
  let cursor: string | null = null;
  do {
    const res = await api("GET", `/api/notifications?limit=200${cursor ? `&cursor=${cursor}` : ""}`, {
      token: who.token,
    });
    expect(res.status).toBe(200);
    const page = await res.json<{ items: NotificationBody[]; nextCursor: string | null }>();
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

describe("bad input", () => {
  /** The rows a request endpoint can write for a person: their requests, the events and the audit rows. */
  async function requestState(userId: string) {
    const result = await db.execute<{ digest: string }>(sql`
      select md5(
        coalesce((select string_agg(r::text, '|' order by r.id) from data_subject_requests r where r.user_id = ${userId}), '')
        || coalesce((select string_agg(e::text, '|' order by e.id) from data_subject_request_events e
          where e.request_id in (select id from data_subject_requests where user_id = ${userId})), '')
        || coalesce((select string_agg(a::text, '|' order by a.id) from audit_logs a where a.subject = 'dsr'
          and a.subject_id in (select id::text from data_subject_requests where user_id = ${userId})), '')
      ) as digest`);
    return result.rows[0].digest;
  }

  const anyBody = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc
      .record({ type: fc.string(), decision: fc.string(), reason: fc.string({ unit: "binary" }) })
      .map((v) => JSON.stringify(v)),
    fc.string({ unit: "binary" }),
  );

  it("any body to create a request or to decide one: never 5xx, and a 4xx writes nothing", async () => {
    const admin = await person({ platformAdmin: true });
    const alice = await person();
    const { body: pending } = await ask(alice, "export");
    const raw = (method: string, path: string, token: string, text: string) =>
      api(method, path, { token, headers: { "Content-Type": "application/json" }, rawBody: text });
    await fc.assert(
      fc.asyncProperty(anyBody, async (text) => {
        const before = await requestState(alice.id);
        for (const res of [
          await raw("POST", "/api/me/data-requests", alice.token, text),
          await raw("PATCH", `/api/admin/data-requests/${pending.id}`, admin.token, text),
        ]) {
          const answer = await res.text();
          expect(res.status, answer.slice(0, 300)).toBeLessThan(500);
          if (res.status >= 400) expect(await requestState(alice.id)).toBe(before);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("deadline", () => {
  it("is DSR_DEADLINE_DAYS after the request (1 to 90, default 30)", async () => {
    expect(loadConfig({ ...env, DSR_DEADLINE_DAYS: undefined } as unknown as Cloudflare.Env).DSR_DEADLINE_DAYS).toBe(
      30,
    );
    for (const bad of ["0", "91", "7.5", "soon"]) {
      expect(() => loadConfig({ ...env, DSR_DEADLINE_DAYS: bad } as unknown as Cloudflare.Env), bad).toThrow(
        ConfigError,
      );
    }
    const bindings = { ...env, DSR_DEADLINE_DAYS: "14" } as unknown as Cloudflare.Env;
    const alice = await person();
    const res = await api("POST", "/api/me/data-requests", { token: alice.token, body: { type: "export" }, bindings });
    expect(res.status).toBe(201);
    const body = await res.json<RequestBody>();
    expect(new Date(body.dueAt).getTime() - new Date(body.requestedAt).getTime()).toBe(14 * DAY);
    const invalid = await api("POST", "/api/me/data-requests", {
      token: alice.token,
      body: { type: "delete" },
      bindings: { ...env, DSR_DEADLINE_DAYS: "365" } as unknown as Cloudflare.Env,
    });
    expect(invalid.status).toBe(500);
    await db.execute(sql`update data_subject_requests set status = 'rejected' where id = ${body.id}`);
  });
});

describe("deadline reminders", () => {
  it("reach every platform admin once per request due within 7 days, across runs, and nobody else", async () => {
    const admin = await person({ platformAdmin: true });
    const member = await person();
    const alice = await person();
    const bob = await person();
    const soon = (await ask(alice, "export")).body;
    const later = (await ask(bob, "export")).body;
    // At the run's clock `soon` is due in 3 days; `later` is moved 20 days further out.
    const at = new Date(new Date(soon.dueAt).getTime() - 3 * DAY);
    await db.execute(sql`
      update data_subject_requests set due_at = ${new Date(at.getTime() + 20 * DAY).toISOString()}::timestamptz
      where id = ${later.id}`);

    const first = await runJob(at);
    expect(first.outcome).toBe("succeeded");
    expect(first.counts?.remindersSent).toBeGreaterThanOrEqual(1);
    const second = await runJob(new Date(at.getTime() + DAY));
    expect(second.outcome).toBe("succeeded");

    const mine = (await notificationsOf(admin)).filter((n) => n.message.includes(soon.id));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      repoId: null,
      type: "system_alert",
      title: "Data request due soon",
      severity: "warning",
      actionUrl: "/api/admin/data-requests?status=pending",
    });
    expect(mine[0].message).toContain(soon.dueAt.slice(0, 10));
    // Nobody is named: the request by id only.
    expect(mine[0].message).not.toContain(alice.login);
    expect(mine[0].message).not.toContain(alice.id);
    expect((await notificationsOf(admin)).some((n) => n.message.includes(later.id))).toBe(false);
    // Not for a non-admin, nor for the requester.
    for (const who of [member, alice]) {
      expect((await notificationsOf(who)).filter((n) => n.repoId === null)).toEqual([]);
    }
    const rows = await db.execute<{ user_id: string }>(sql`
      select user_id from notifications
      where metadata ->> 'event' = ${REMINDER_EVENT} and metadata ->> 'requestId' = ${soon.id}`);
    // One per admin (every admin there was at the run), none to anyone else.
    const recipients = rows.rows.map((r) => r.user_id);
    expect(new Set(recipients).size).toBe(recipients.length);
    expect(recipients).toContain(admin.id);
    for (const who of [member, alice, bob]) expect(recipients).not.toContain(who.id);
    expect(
      (
        await db.execute(sql`
          select 1 from notifications where metadata ->> 'event' = ${REMINDER_EVENT} and metadata ->> 'requestId' = ${later.id}`)
      ).rows,
    ).toEqual([]);

    // The admin reads it; a third run still sends nothing new for it. `later`, once inside its window, is reminded.
    expect((await api("POST", `/api/notifications/${mine[0].id}/read`, { token: admin.token })).status).toBe(200);
    await runJob(new Date(at.getTime() + 2 * DAY));
    expect((await notificationsOf(admin)).filter((n) => n.message.includes(soon.id))).toHaveLength(1);
    await runJob(new Date(at.getTime() + 14 * DAY));
    const laterReminder = (await notificationsOf(admin)).filter((n) => n.message.includes(later.id));
    expect(laterReminder).toHaveLength(1);
    expect(laterReminder[0].title).toBe("Data request due soon");
    expect((await notificationsOf(admin)).filter((n) => n.message.includes(soon.id))).toHaveLength(1);

    await db.execute(sql`update data_subject_requests set status = 'rejected' where id in (${soon.id}, ${later.id})`);
  });

  it("are sent even when the ARCHIVE binding is missing and nothing can be carried out", async () => {
    const admin = await person({ platformAdmin: true });
    const carol = await person();
    const request = (await ask(carol, "export")).body;
    const at = new Date(new Date(request.dueAt).getTime() - 2 * DAY);
    const result = await privacyRequests.run({
      config: loadConfig(env),
      env: { ...env, ARCHIVE: undefined },
      db,
      scheduledTime: at,
    });
    expect(result.outcome).toBe("skipped");
    expect(result.counts?.remindersSent).toBeGreaterThanOrEqual(1);
    expect((await notificationsOf(admin)).filter((n) => n.message.includes(request.id))).toHaveLength(1);
    await db.execute(sql`update data_subject_requests set status = 'rejected' where id = ${request.id}`);
  });
});

describe("export", () => {
  it("contains every row of that user and no row of another, as JSON and CSV in a ZIP behind an expiring link", async () => {
    const admin = await person({ platformAdmin: true });
    const alice = await person();
    const bob = await person();
    await withEmail(alice);
    await withEmail(bob);
    // Rows of both: roles and role history on a shared repository, notifications, accounts, telemetry.
    const repo = await createRepo(serviceContext(), alice.id, { owner: `org-${alice.login}`, name: "shared" });
    await setRole(serviceContext(), { actorId: alice.id, repoId: repo.id, userId: bob.id, role: "member" });
    for (const who of [alice, bob]) {
      await db.execute(sql`
        insert into notifications (repo_id, user_id, type, title, message) values (${repo.id}, ${who.id}, 'other', 'hi', 'there')`);
      await db.execute(sql`
        insert into accounts (user_id, provider, provider_account_id, access_token)
        values (${who.id}, 'github', ${`acct-${who.login}`}, 'secret-access-token')`);
      await db.execute(sql`insert into telemetry_events (user_id, event_type) values (${who.id}, 'ui.open')`);
    }
    await ask(bob, "export");
    const { body } = await ask(alice, "export");
    expect((await decide(admin, body.id, "approve")).status).toBe(200);

    const run = await runJob();
    expect(run.outcome).toBe("succeeded");
    const done = await (
      await api("GET", `/api/me/data-requests/${body.id}`, { token: alice.token })
    ).json<RequestBody>();
    expect(done).toMatchObject({ status: "completed", exportAvailable: true });
    expect(done.events.map((e) => e.status)).toEqual(["pending", "processing", "completed"]);

    const linkRes = await api("POST", `/api/me/data-requests/${body.id}/download-link`, { token: alice.token });
    expect(linkRes.status).toBe(200);
    const link = await linkRes.json<{ url: string; expiresAt: string }>();
    expect(new Date(link.expiresAt).getTime()).toBeLessThanOrEqual(Date.now() + 15 * 60 * 1000 + 1000);
    // Another person's token, or the link's request id swapped: refused.
    expect((await api("GET", link.url, { token: bob.token })).status).toBe(403);
    expect((await api("POST", `/api/me/data-requests/${body.id}/download-link`, { token: bob.token })).status).toBe(
      404,
    );
    expect(
      (await api("GET", link.url.replace(/signature=[^&]+/, `signature=${"A".repeat(43)}`), { token: alice.token }))
        .status,
    ).toBe(403);
    const expired = await signDownload(env.HMAC_KEK as string, {
      requestId: body.id,
      userId: alice.id,
      now: new Date(Date.now() - 16 * 60 * 1000),
    });
    const expiredUrl = `/api/me/data-requests/${body.id}/download?expires=${expired.expires}&signature=${expired.signature}`;
    expect((await api("GET", expiredUrl, { token: alice.token })).status).toBe(403);

    const download = await api("GET", link.url, { token: alice.token });
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toBe("application/zip");
    const entries = unzipSync(new Uint8Array(await download.arrayBuffer()));
    expect(Object.keys(entries).sort()).toEqual(
      ["README.txt", "export.json", ...EXPORT_TABLES.map((t) => `${t}.csv`)].sort(),
    );
    const document = JSON.parse(strFromU8(entries["export.json"]));
    expect(document.userId).toBe(alice.id);

    // Every row of alice, table by table, selected here independently of the export's own queries.
    const expectedIds = await db.execute<{ table: string; ids: string[] }>(sql`
      select 'users' as table, array_agg(id::text) as ids from users where id = ${alice.id}
      union all select 'accounts', array_agg(id::text) from accounts where user_id = ${alice.id}
      union all select 'sessions', array_agg(id::text) from sessions where user_id = ${alice.id}
      union all select 'user_repo_roles', array_agg(id::text) from user_repo_roles where user_id = ${alice.id}
      union all select 'role_audit_logs', array_agg(id::text) from role_audit_logs
        where ${alice.id} in (actor_id, target_user_id)
      union all select 'notifications', array_agg(id::text) from notifications where user_id = ${alice.id}
      union all select 'telemetry_events', array_agg(id::text) from telemetry_events where user_id = ${alice.id}
      union all select 'data_subject_requests', array_agg(id::text) from data_subject_requests where user_id = ${alice.id}
      union all select 'data_subject_request_events', array_agg(e.id::text) from data_subject_request_events e
        join data_subject_requests r on r.id = e.request_id where r.user_id = ${alice.id} and e.created_at < (
          select processed_at from data_subject_requests where id = ${body.id})
      union all select 'audit_logs', array_agg(id::text) from audit_logs where (actor_id = ${alice.id}
        or subject_id = ${alice.id}
        or subject_id in (select id::text from data_subject_requests where user_id = ${alice.id}))
        and created_at < (select processed_at from data_subject_requests where id = ${body.id})`);
    for (const { table, ids } of expectedIds.rows) {
      const exported = (document.tables[table] as { id: string }[]).map((r) => r.id).sort();
      expect(exported, table).toEqual([...(ids ?? [])].sort());
      expect(exported.length, table).toBeGreaterThan(0);
    }
    // No row of another: nothing of bob, and no secrets.
    const text = JSON.stringify(document);
    expect(text).not.toContain(bob.login);
    expect(text).not.toContain("secret-access-token");
    for (const row of document.tables.role_audit_logs as { actor_id: string; target_user_id: string }[]) {
      expect([row.actor_id, row.target_user_id]).toContain(alice.id);
    }
    for (const row of document.tables.notifications as { user_id: string }[]) expect(row.user_id).toBe(alice.id);
    // The CSVs hold the same rows.
    const accountsCsv = strFromU8(entries["accounts.csv"]);
    expect(accountsCsv.trim().split("\r\n")).toHaveLength(1 + document.tables.accounts.length);
    expect(accountsCsv).not.toContain("access_token");
    const audit = await db.execute(
      sql`select 1 from audit_logs where action = 'dsr_export_download' and subject_id = ${body.id} and actor_id = ${alice.id}`,
    );
    expect(audit.rows).toHaveLength(1);

    // 30 days after completion the archive and export_data are deleted by the job; the timeline says so.
    const processedAt = new Date(
      (
        await db.execute<{ at: string }>(
          sql`select processed_at as at from data_subject_requests where id = ${body.id}`,
        )
      ).rows[0].at,
    );
    await runJob(new Date(processedAt.getTime() + 29 * DAY));
    expect(await (env.ARCHIVE as R2Bucket).head(exportKey(body.id))).not.toBeNull();
    const purge = await runJob(new Date(processedAt.getTime() + 30 * DAY + 60_000));
    expect(purge.counts?.exportsPurged).toBeGreaterThanOrEqual(1);
    expect(await (env.ARCHIVE as R2Bucket).head(exportKey(body.id))).toBeNull();
    const after = await db.execute<{ export_data: unknown; processed_at: string }>(
      sql`select export_data, processed_at from data_subject_requests where id = ${body.id}`,
    );
    expect(after.rows[0].export_data).toBeNull();
    expect(new Date(after.rows[0].processed_at).getTime()).toBe(processedAt.getTime());
    expect((await api("POST", `/api/me/data-requests/${body.id}/download-link`, { token: alice.token })).status).toBe(
      404,
    );
    expect((await api("GET", link.url, { token: alice.token })).status).toBe(404);
  });
});

/**
 * Every text, varchar, text[] and jsonb column of every table (partitioned tables through their parent),
 * searched for each needle, case-insensitively: the hits as `table.column`.
 */
async function scanDatabase(needles: string[]): Promise<{ hits: string[]; unreadable: string[] }> {
  const columns = await db.execute<{ table: string; column: string; readable: boolean }>(sql`
    select c.relname as table, a.attname as column, has_table_privilege(c.oid, 'SELECT') as readable
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
      and a.atttypid in ('text'::regtype, 'character varying'::regtype, 'jsonb'::regtype, 'text[]'::regtype)
    order by 1, 2`);
  const unreadable = [...new Set(columns.rows.filter((c) => !c.readable).map((c) => c.table))];
  const hits: string[] = [];
  for (const { table, column } of columns.rows.filter((c) => c.readable)) {
    for (const needle of needles) {
      const found = await db.execute(
        sql`select 1 from ${sql.identifier(table)} where strpos(lower(${sql.identifier(column)}::text), lower(${needle})) > 0 limit 1`,
      );
      if (found.rows.length) hits.push(`${table}.${column} ∋ ${needle}`);
    }
  }
  return { hits, unreadable };
}

describe("erasure", () => {
  it("is blocked while the person is the sole admin of a repository, with a message saying what to do", async () => {
    const alice = await person();
    const repo = await createRepo(serviceContext(), alice.id, { owner: `org-${alice.login}`, name: "solo" });
    const { res, body } = await ask(alice, "delete");
    expect(res.status).toBe(409);
    expect(body.error?.message).toContain(`org-${alice.login}/solo`);
    expect(body.error?.message).toMatch(/admin role on each, or delete it/);
    // Handed over: the request goes through.
    const bob = await person();
    await setRole(serviceContext(), { actorId: alice.id, repoId: repo.id, userId: bob.id, role: "admin" });
    const retry = await ask(alice, "delete");
    expect(retry.res.status).toBe(201);

    // Sole admin again after approval (bob removed): the job fails the request with the same explanation.
    const admin = await person({ platformAdmin: true });
    expect((await decide(admin, retry.body.id, "approve")).status).toBe(200);
    await db.execute(sql`delete from user_repo_roles where repo_id = ${repo.id} and user_id = ${bob.id}`);
    await runJob();
    const view = await (
      await api("GET", `/api/me/data-requests/${retry.body.id}`, { token: alice.token })
    ).json<RequestBody>();
    expect(view.status).toBe("failed");
    expect(view.events.at(-1)?.message).toContain("blocked: You are the only admin");
    expect((await api("GET", "/api/me", { token: alice.token })).status).toBe(200);
  });

  it("removes or pseudonymises the person everywhere, append-only history included: a whole-database scan finds nothing", async () => {
    const admin = await person({ platformAdmin: true });
    const alice = await person();
    const bob = await person();
    const email = await withEmail(alice);
    const name = `Name ${alice.login}`;
    const githubId = `gh${alice.login.slice(5)}77`;
    const providerAccountId = `acct-${alice.login}`;
    const ctx = serviceContext();
    // A repository bob administers, alice an admin too; another where she is a member.
    const shared = await createRepo(ctx, bob.id, { owner: `org-${bob.login}`, name: "shared" });
    await setRole(ctx, { actorId: bob.id, repoId: shared.id, userId: alice.id, role: "admin" });
    const other = await createRepo(ctx, bob.id, { owner: `org-${bob.login}`, name: "other" });
    await setRole(ctx, { actorId: bob.id, repoId: other.id, userId: alice.id, role: "member" });
    await setRole(ctx, { actorId: alice.id, repoId: shared.id, userId: bob.id, role: "admin" });
    // Personal data copied where it should not be: audit metadata and text, notifications, failure output,
    // CODEOWNERS owners, telemetry, accounts, a verification token.
    await db.execute(sql`
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, ip_address, user_agent)
      values (${alice.id}, 'login_success', 'user', ${alice.id}, ${`login by ${alice.login} <${email}>`},
        ${JSON.stringify({ email, login: alice.login, name, nested: [{ who: `@${alice.login}` }], githubId })}::jsonb,
        '203.0.113.9', 'Mozilla/5.0')`);
    await db.execute(sql`
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata)
      values (${bob.id}, 'other', 'user', ${alice.id}, 'bob looked at a profile', ${JSON.stringify({ target: alice.id })}::jsonb)`);
    await db.execute(sql`
      insert into notifications (repo_id, user_id, type, title, message, metadata)
      values (${shared.id}, null, 'flake_detected', ${`Flaky test owned by @${alice.login}`}, ${`Ask ${name} (${email})`},
        ${JSON.stringify({ owners: [`@${alice.login}`] })}::jsonb),
        (${shared.id}, ${alice.id}, 'other', 'for alice', 'only hers', null)`);
    await db.execute(sql`
      insert into owner_maps (repo_id, pattern, owner, source) values (${shared.id}, 'src/**', ${`@${alice.login}`}, 'manual')`);
    await db.execute(sql`
      insert into accounts (user_id, provider, provider_account_id) values (${alice.id}, 'github', ${providerAccountId})`);
    await db.execute(sql`
      insert into telemetry_events (user_id, event_type, event_data) values (${alice.id}, 'ui.open', ${JSON.stringify({ email })}::jsonb)`);
    await db.execute(sql`
      insert into verification_tokens (identifier, token, expires) values (${email}, ${crypto.randomUUID()}, now() + interval '1 day')`);
    const { plaintext } = await createSecret(ctx, await keyring(), { repoId: shared.id });
    const failing = [
      {
        path: "src/login.test.ts",
        name: `greets ${alice.login}`,
        status: "fail",
        startedAt: new Date().toISOString(),
        durationMs: 5,
        failureDetails: `expected greeting for ${name} <${email}> (user ${alice.login}, id ${alice.id})`,
      },
    ];
    const uploaded = await upload(payload(shared.id, {}, failing), { repoId: shared.id, secret: plaintext });
    expect(uploaded.status, await uploaded.clone().text()).toBe(200);
    const auditRowsBefore = await db.execute<{ n: number }>(
      sql`select count(*)::int as n from audit_logs where actor_id = ${alice.id}`,
    );

    const needles = [email, alice.login, name, alice.id, githubId, providerAccountId];
    expect((await scanDatabase(needles)).hits.length).toBeGreaterThan(5);

    const { body } = await ask(alice, "delete");
    expect((await decide(admin, body.id, "approve")).status).toBe(200);
    const run = await runJob();
    expect(run.outcome).toBe("succeeded");

    const scan = await scanDatabase(needles);
    expect(scan.hits).toEqual([]);
    // The Worker's role reads every table but the migrations ledger, which holds no personal data.
    expect(scan.unreadable.every((table) => table === "anchorpipe_migrations")).toBe(true);

    // The request is completed; the person is a tombstone under a pseudonym; their token no longer works.
    const request = await db.execute<{ status: string; metadata: { pseudonym: string } }>(
      sql`select status, metadata from data_subject_requests where id = ${body.id}`,
    );
    expect(request.rows[0].status).toBe("completed");
    const pseudonym = request.rows[0].metadata.pseudonym;
    expect(pseudonym).toMatch(/^erased-[0-9a-f]{16}$/);
    const user = await db.execute(
      sql`select github_id, github_login, email, name, deleted_at from users where id = ${alice.id}`,
    );
    expect(user.rows[0]).toMatchObject({ github_id: null, github_login: null, email: null, name: pseudonym });
    expect(user.rows[0].deleted_at).not.toBeNull();
    expect((await api("GET", "/api/me", { token: alice.token })).status).toBe(401);

    // History stays, with the pseudonym in place of what named her; her client address and agent are gone.
    const history = await db.execute<{ description: string; metadata: Record<string, unknown>; ip: string | null }>(
      sql`select description, metadata, ip_address::text as ip from audit_logs where actor_id = ${alice.id} and action = 'login_success'`,
    );
    expect(history.rows[0]).toMatchObject({
      description: `login by ${pseudonym} <${pseudonym}>`,
      metadata: { email: pseudonym, login: pseudonym, name: pseudonym, nested: [{ who: `@${pseudonym}` }] },
      ip: null,
    });
    const auditRowsAfter = await db.execute<{ n: number }>(
      sql`select count(*)::int as n from audit_logs where actor_id = ${alice.id}`,
    );
    expect(auditRowsAfter.rows[0].n).toBeGreaterThanOrEqual(auditRowsBefore.rows[0].n);

    // Her repositories stay with the other admin.
    const roles = await db.execute<{ user_id: string; role: string }>(
      sql`select user_id, role from user_repo_roles where repo_id in (${shared.id}, ${other.id}) order by repo_id, user_id`,
    );
    expect(roles.rows.every((r) => r.user_id === bob.id && r.role === "admin")).toBe(true);
    expect(roles.rows).toHaveLength(2);

    // The append-only tables still refuse a plain change, even now.
    await expect(
      db.execute(sql`update audit_logs set description = 'x' where actor_id = ${alice.id}`),
    ).rejects.toThrow();
    await expect(db.execute(sql`select anchorpipe_erase_user(${bob.id}::uuid, 'not a pseudonym')`)).rejects.toThrow();

    // Running the job again does nothing more to her.
    expect((await runJob()).outcome).toBe("succeeded");
  });
});

/**
 * The test-run archive (ARCHIVE, test-runs/…): runs archived before an erasure are rewritten by it. The runs are
 * dated in 2031 so that no retention run of another test file (all as of past dates) archives or deletes them.
 */
describe("erasure in the test-run archive", () => {
  const MONTH = "2031-02";
  const bucket = env.ARCHIVE as R2Bucket;
  const fixedClock = () => new Date("2031-04-01T03:17:00Z");

  /** Every object in the bucket: its SHA-256 and its text (gzip parts decompressed, ZIP entries joined). */
  async function readBucket(): Promise<Map<string, { sha256: string; text: string }>> {
    const objects = new Map<string, { sha256: string; text: string }>();
    let startAfter: string | undefined;
    for (;;) {
      const page = await bucket.list({ startAfter, limit: 1000 });
      for (const listed of page.objects) {
        const object = await bucket.get(listed.key);
        if (!object) continue;
        const bytes = new Uint8Array(await object.arrayBuffer());
        let text: string;
        if (listed.key.endsWith(".gz"))
          text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
        else if (listed.key.endsWith(".zip"))
          text = Object.values(unzipSync(bytes))
            .map((data) => strFromU8(data))
            .join("\n");
        else text = new TextDecoder().decode(bytes);
        objects.set(listed.key, { sha256: await sha256Hex(bytes), text });
      }
      if (!page.truncated) break;
      startAfter = page.objects.at(-1)?.key;
    }
    return objects;
  }

  const hitsIn = (text: string, needles: string[]) =>
    needles.filter((needle) => text.toLowerCase().includes(needle.toLowerCase()));
  const count = (text: string, needle: string) => text.split(needle).length - 1;

  /**
   * A repository with 240 runs in MONTH. With `named`, its test case, tags, ingestion environment, branches,
   * failure output and run metadata name that person (email in upper case, login after a newline, GitHub id
   * as a JSON number); every run's failure output of the other kind names bob.
   */
  async function seedRepo(
    named: { login: string; email: string; name: string; id: string; githubId: string; account: string } | null,
    bob: { login: string; email: string },
  ) {
    const [repo] = await db
      .insert(repos)
      .values({ owner: `archive-${crypto.randomUUID().slice(0, 8)}`, name: "runs" })
      .returning();
    await db.execute(sql`select anchorpipe_ensure_test_run_partitions(1, ${`${MONTH}-01`}::date)`);
    const actor = named?.login ?? "ci-bot";
    await db.execute(sql`
      insert into test_cases (repo_id, path, name, framework, tags)
      values (${repo.id}, 'src/login.test.ts', ${named ? `greets ${named.login}` : "greets someone"}, 'vitest',
              ${`{auth,@${actor}}`}::text[]),
             (${repo.id}, 'src/other.test.ts', 'passes', 'vitest', '{}')`);
    await db.execute(sql`
      insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
        tests_failed, tests_skipped, environment, payload_sha256, response, received_at, completed_at)
      values (${repo.id}, 'archive-key', repeat('a', 40), 'ci-1', 'vitest', 'v2', 240, 40, 0,
        ${JSON.stringify({ GITHUB_ACTOR: actor, runner: "linux" })}::jsonb, repeat('0', 64), '{"accepted": true}',
        ${`${MONTH}-01T00:00:00Z`}::timestamptz, ${`${MONTH}-01T00:00:00Z`}::timestamptz)`);
    await db.execute(sql`
      insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, branch, run_id, status, duration_ms,
        started_at, failure_details, metadata, created_at)
      select ${repo.id}, tc.id, i.id, repeat('a', 40),
        case when n % 6 = 0 then ${`${actor}/fix-flake`} else 'main' end, 'ci-1',
        case when n % 3 = 0 then 'fail' else 'pass' end::test_run_status, n, t,
        case when n % 6 = 0 and ${named !== null} then ${named ? `expected greeting for ${named.name} <${named.email.toUpperCase()}>\n${named.login} (user ${named.id}, account ${named.account})` : ""}
             when n % 6 = 3 then ${`broken by ${bob.login} <${bob.email}>`} end,
        case when n % 6 = 0 and ${named !== null}
             then jsonb_build_object('n', n, 'owner', ${named?.email ?? ""}::text,
               'ids', jsonb_build_object(${named?.login ?? "x"}::text, ${named?.githubId ?? "0"}::numeric))
             else jsonb_build_object('n', n) end,
        t
      from generate_series(${`${MONTH}-01T01:00:00Z`}::timestamptz, ${`${MONTH}-20T22:00:00Z`}::timestamptz,
        '2 hours'::interval) with ordinality as s(t, n)
      join test_cases tc on tc.repo_id = ${repo.id} and tc.name <> 'passes'
      join ingestions i on i.repo_id = ${repo.id}`);
    const result = await archiveRepoMonth({ db, now: fixedClock }, bucket, {
      repoId: repo.id,
      month: MONTH,
      until: new Date("2031-03-01T00:00:00Z"),
      maxParts: 100,
      limits: { pageRows: 40, partMaxRows: 80, partMaxBytes: 1024 * 1024 },
    });
    expect(result.manifest.parts.length).toBeGreaterThanOrEqual(3);
    // Gone from the database, as retention leaves them: a restore can only bring back what the archive holds.
    await removeRepoRows(repo.id);
    return { repoId: repo.id, manifest: result.manifest };
  }

  async function removeRepoRows(repoId: string) {
    await db.execute(sql`delete from test_runs where repo_id = ${repoId}`);
    await db.execute(sql`delete from ingestions where repo_id = ${repoId}`);
    await db.execute(sql`delete from test_cases where repo_id = ${repoId}`);
  }

  /** Every part's object against its manifest entry: the keys whose SHA-256 or size differ. */
  async function inconsistentParts(repoId: string): Promise<string[]> {
    const manifest = await readManifest(bucket, repoId, MONTH);
    const bad: string[] = [];
    for (const part of manifest?.parts ?? []) {
      const object = await bucket.get(part.key);
      const bytes = new Uint8Array((await object?.arrayBuffer()) ?? new ArrayBuffer(0));
      if ((await sha256Hex(bytes)) !== part.sha256 || bytes.byteLength !== part.bytes) bad.push(part.key);
    }
    if (manifest && manifest.bytes !== manifest.parts.reduce((sum, p) => sum + p.bytes, 0)) bad.push("total bytes");
    return bad;
  }

  it("rewrites every part naming the person (resuming after a cut-short and a crashed run), leaves the rest byte for byte, and a restore brings back only the pseudonym", async () => {
    const admin = await person({ platformAdmin: true });
    const alice = await person();
    const bob = await person();
    const email = await withEmail(alice);
    const bobEmail = await withEmail(bob);
    const name = `Name ${alice.login}`;
    const githubId = String(100_000_000 + Math.floor(Math.random() * 800_000_000));
    const providerAccountId = `acct-${alice.login}`;
    await db.execute(sql`update users set github_id = ${githubId} where id = ${alice.id}`);
    await db.execute(sql`
      insert into accounts (user_id, provider, provider_account_id) values (${alice.id}, 'github', ${providerAccountId})`);
    const needles = [email, alice.login, name, alice.id, githubId, providerAccountId];
    const named = { login: alice.login, email, name, id: alice.id, githubId, account: providerAccountId };
    const withAlice = await seedRepo(named, { login: bob.login, email: bobEmail });
    const withoutAlice = await seedRepo(null, { login: bob.login, email: bobEmail });

    // Her own export, in the bucket until erasure.
    const exportRequest = (await ask(alice, "export")).body;
    expect((await decide(admin, exportRequest.id, "approve")).status).toBe(200);
    await processApproved({ db, now: fixedClock }, bucket, { limit: 1000 });
    expect(await bucket.head(exportKey(exportRequest.id))).not.toBeNull();

    const before = await readBucket();
    const mine = [...before.keys()].filter((key) => key.includes(withAlice.repoId) && key.endsWith(".gz"));
    const others = [...before.keys()].filter((key) => key.includes(withoutAlice.repoId) && key.endsWith(".gz"));
    expect(mine.every((key) => hitsIn(before.get(key)?.text ?? "", needles).length === needles.length)).toBe(true);
    const bobBefore = [...before.values()].reduce((sum, o) => sum + count(o.text, bobEmail), 0);
    expect(bobBefore).toBeGreaterThan(0);

    const { body } = await ask(alice, "delete");
    expect((await decide(admin, body.id, "approve")).status).toBe(200);
    const status = async () =>
      (await db.execute<{ status: string }>(sql`select status from data_subject_requests where id = ${body.id}`))
        .rows[0].status;

    // Cut short after one part: still processing, nothing erased from the database yet.
    const cut = await processApproved({ db, now: fixedClock }, bucket, { limit: 1000, archiveMaxParts: 1 });
    expect(cut.erasuresInProgress).toBeGreaterThanOrEqual(1);
    const request = async () =>
      (
        await db.execute<{
          status: string;
          metadata: { pseudonym: string; archiveErasure?: { partsScanned: number } };
        }>(sql`select status, metadata from data_subject_requests where id = ${body.id}`)
      ).rows[0];
    expect(await request()).toMatchObject({ status: "processing", metadata: { archiveErasure: { partsScanned: 1 } } });
    const pseudonym = (await request()).metadata.pseudonym;
    expect(pseudonym).toMatch(/^erased-[0-9a-f]{16}$/);
    expect((await db.execute(sql`select 1 from users where id = ${alice.id} and email is not null`)).rows).toHaveLength(
      1,
    );

    // A run that dies between storing a rewritten part and its manifest: the request stays processing, and that
    // part's object and manifest entry disagree until the next run.
    let crashed = false;
    const crashing = {
      get: (key: string) => bucket.get(key),
      head: (key: string) => bucket.head(key),
      list: (options: R2ListOptions) => bucket.list(options),
      delete: (key: string) => bucket.delete(key),
      put: (key: string, value: ArrayBuffer | ArrayBufferView | string, options?: R2PutOptions) => {
        if (key.endsWith("manifest.json") && !crashed) {
          crashed = true;
          throw new Error("simulated crash");
        }
        return bucket.put(key, value, options);
      },
    };
    const failed = await processApproved({ db, now: fixedClock }, crashing, { limit: 1000 });
    expect(failed.errors).toBe(1);
    expect(crashed).toBe(true);
    expect(await status()).toBe("processing");
    expect(await inconsistentParts(withAlice.repoId)).toHaveLength(1);

    // The job finishes: the archive, then the database.
    const run = await runJob();
    expect(run.outcome).toBe("succeeded");
    expect(await status()).toBe("completed");
    const done = await db.execute<{ metadata: { pseudonym: string; archive: Record<string, number> } }>(
      sql`select metadata from data_subject_requests where id = ${body.id}`,
    );
    expect(done.rows[0].metadata.pseudonym).toBe(pseudonym);
    // The crashed run's part was stored before the crash, so the next run repaired its manifest entry.
    expect(done.rows[0].metadata.archive).toMatchObject({ partsRewritten: mine.length - 1, manifestsRepaired: 1 });
    expect(await inconsistentParts(withAlice.repoId)).toEqual([]);
    expect(await inconsistentParts(withoutAlice.repoId)).toEqual([]);

    // Every object in the bucket, decompressed: nothing of her; her export is gone; bob's text is all there.
    const after = await readBucket();
    for (const [key, object] of after) expect(hitsIn(object.text, needles), key).toEqual([]);
    expect(after.has(exportKey(exportRequest.id))).toBe(false);
    expect([...after.values()].reduce((sum, o) => sum + count(o.text, bobEmail), 0)).toBe(bobBefore);
    for (const key of mine) expect(after.get(key)?.text).toContain(pseudonym);
    // Parts that never named her are not rewritten.
    for (const key of others) expect(after.get(key)?.sha256).toBe(before.get(key)?.sha256);
    // The rewrite is the database's: a line holds what anchorpipe_erase_user leaves in the row.
    const line = (after.get(mine[0])?.text ?? "")
      .split("\n")
      .find((l) => l.includes('"kind":"test_run"') && l.includes(pseudonym));
    expect(JSON.parse(line ?? "{}").row).toMatchObject({
      branch: `${pseudonym}/fix-flake`,
      failure_details: `expected greeting for ${pseudonym} <${pseudonym}>\n${pseudonym} (user ${pseudonym}, account ${pseudonym})`,
      metadata: { owner: pseudonym, ids: { [pseudonym]: pseudonym } },
    });

    // Restored, the month brings back the pseudonym and bob, never her.
    for (const repo of [withAlice, withoutAlice]) {
      const restored = await restoreArchivedMonth({ db, now: fixedClock }, bucket, {
        repoId: repo.repoId,
        month: MONTH,
      });
      expect(restored).toMatchObject({
        runsRestored: repo.manifest.rows,
        testCasesRecreated: 1,
        ingestionsRecreated: 1,
      });
    }
    const rows = await db.execute<{ line: string }>(sql`
      select to_jsonb(r)::text as line from test_runs r where repo_id in (${withAlice.repoId}, ${withoutAlice.repoId})
      union all select to_jsonb(c)::text from test_cases c where repo_id in (${withAlice.repoId}, ${withoutAlice.repoId})
      union all select to_jsonb(i)::text from ingestions i where repo_id in (${withAlice.repoId}, ${withoutAlice.repoId})`);
    const restoredText = rows.rows.map((r) => r.line).join("\n");
    expect(rows.rows.length).toBe(withAlice.manifest.rows + withoutAlice.manifest.rows + 4);
    expect(hitsIn(restoredText, needles)).toEqual([]);
    expect(restoredText).toContain(pseudonym);
    expect(restoredText).toContain(bobEmail);

    // A second run changes nothing: no object, no request.
    const events = async () =>
      (await db.execute(sql`select id from data_subject_request_events where request_id = ${body.id}`)).rows.length;
    const eventsBefore = await events();
    expect((await runJob()).outcome).toBe("succeeded");
    const again = await readBucket();
    for (const [key, object] of after) expect(again.get(key)?.sha256, key).toBe(object.sha256);
    expect(await events()).toBe(eventsBefore);

    await removeRepoRows(withAlice.repoId);
    await removeRepoRows(withoutAlice.repoId);
  });

  it("skips exactly the columns anchorpipe_erase_user skips", async () => {
    const source = await db.execute<{ src: string }>(
      sql`select prosrc as src from pg_proc where proname = 'anchorpipe_erase_user'`,
    );
    const list = /attname NOT IN \(([^)]*)\)/i.exec(source.rows[0].src)?.[1] ?? "";
    const skipped = [...list.matchAll(/'([^']+)'/g)].map((m) => m[1]);
    expect([...skipped].sort()).toEqual([...ERASURE_SKIPPED_COLUMNS].sort());
  });

  it("picks every line PostgreSQL's pattern would rewrite (the JavaScript test is a superset)", async () => {
    const needles = ["Ada.Lovelace@mail.example", "ada-l", "Ada Lovelace", "583231"];
    const { pattern } = { pattern: await patternOf(needles) };
    const matcher = needleMatcher(needles);
    const around = fc.constantFrom(
      "",
      " ",
      "-",
      "_",
      ".",
      "x",
      "é",
      "\n",
      "\t",
      '"',
      "\\",
      "/",
      "@",
      "+",
      "1",
      "ß",
      "\u0001",
    );
    const needle = fc.constantFrom(...needles, "ADA-L", "ada lovelace", "ADA.LOVELACE@MAIL.EXAMPLE");
    const texts = fc.sample(
      fc.tuple(around, around, needle, around, around).map((parts) => parts.join("")),
      300,
    );
    const result = await db.execute<{ text: string; hit: boolean }>(sql`
      select t as text, t ~* ${pattern} as hit from jsonb_array_elements_text(${JSON.stringify(texts)}::jsonb) as x(t)`);
    for (const row of result.rows) {
      if (row.hit) expect(matcher.test(JSON.stringify({ failure_details: row.text })), row.text).toBe(true);
    }
    expect(result.rows.some((row) => row.hit)).toBe(true);
  });

  /** The pattern the function builds for these needles (the same SQL as personNeedles). */
  async function patternOf(needles: string[]): Promise<string> {
    const result = await db.execute<{ pattern: string }>(sql`
      select '(?<![[:alnum:]_.-])(' || string_agg(regexp_replace(n, ${String.raw`([].^$*+?(){}|\\[-])`}, ${String.raw`\\\1`}, 'g'),
        '|' order by length(n) desc, n) || ')(?![[:alnum:]_-])' as pattern
      from jsonb_array_elements_text(${JSON.stringify(needles)}::jsonb) as x(n)`);
    return result.rows[0].pattern;
  }
});
