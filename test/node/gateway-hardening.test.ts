import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { NeonDbError, neon } from "@neondatabase/serverless";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { isDatabaseUnavailable } from "../../src/lib/db-errors.ts";
import { prepareMigrator, ROLES } from "../../tools/db/roles.ts";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../../tools/gateway/backends.ts";
import { createGateway } from "../../tools/gateway/handler.ts";
import { listen } from "../../tools/gateway/server.ts";
import {
  CONNECTION_STRING,
  connectionStringFor,
  ENDPOINT,
  type InProcessGateway,
  inProcessGateway,
  openTestBackend,
  sqlClient,
  TEST_USERS,
  uniqueName,
} from "./support.ts";

/**
 * The gateway as an attacker and an unlucky developer would meet it (issue #8): huge results, foreign
 * web pages, wrong passwords, role changes, prototype keys and a database that goes away. Each case runs
 * on this run's backend (CI runs both); after each, the same gateway must answer an ordinary query.
 */
const APPLICATION = `hardening-${process.pid}`;
let backend: Backend;
let gw: InProcessGateway;
const owner = sqlClient("owner");
const worker = sqlClient("worker");
const reader = sqlClient("reader");

beforeAll(async () => {
  backend = await openTestBackend(APPLICATION);
  gw = inProcessGateway(backend);
});
afterAll(() => backend.close());

async function failure(query: Promise<unknown>): Promise<Error & Partial<NeonDbError>> {
  const error = await query.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error & Partial<NeonDbError>;
}

/** The next ordinary query works, as the role its user maps to. */
async function stillServes() {
  expect(await owner.query("select 1 as one, current_user::text as role")).toEqual([{ one: 1, role: ROLES.migrator }]);
  expect(await worker.query("select current_user::text as role")).toEqual([{ role: ROLES.app }]);
}

describe("a result far larger than Neon's 10 MiB", () => {
  it("is read incrementally and refused with 507 as soon as the limit is crossed", async () => {
    const counter = uniqueName("rows_read");
    await owner.query(`create sequence ${counter}`);
    // 25 million rows if read to the end; every row read by PostgreSQL advances the sequence.
    const error = await failure(
      owner.query(
        `select nextval('${counter}') as n, a, b from generate_series(1, 5000) a, generate_series(1, 5000) b`,
      ),
    );
    expect(error.message).toMatch(/HTTP status 507.*response is too large \(max is 10485760 bytes\)/);
    const [{ read }] = await owner.query(`select last_value::int8::text as read from ${counter}`);
    // Stopped within a page of the limit (about 350,000 rows of this size), nowhere near 25 million.
    expect(Number(read)).toBeGreaterThan(100_000);
    expect(Number(read)).toBeLessThan(1_000_000);
    await stillServes();
  });

  it("counts a batch as one response, and rolls the batch back", async () => {
    const name = uniqueName("big_batch");
    await owner.query(`create table ${name} (n int)`);
    const error = await failure(
      owner.transaction([
        owner.query(`insert into ${name} values (1)`),
        owner.query("select repeat('x', 4 * 1024 * 1024) as a"),
        owner.query("select repeat('y', 4 * 1024 * 1024) as b"),
        owner.query("select repeat('z', 4 * 1024 * 1024) as c"),
      ]),
    );
    expect(error.message).toMatch(/HTTP status 507/);
    expect(await owner.query(`select count(*)::int as c from ${name}`)).toEqual([{ c: 0 }]);
    await stillServes();
  });

  it("refuses a request body over 10 MiB with 413, whether or not it says its length", async () => {
    const body = JSON.stringify({ query: "select 1", params: ["x".repeat(10 * 1024 * 1024)] });
    const declared = await gw.post(body);
    expect(declared.status).toBe(413);
    const streamed = await gw.gateway.handle(
      new Request(ENDPOINT, {
        method: "POST",
        headers: { "Neon-Connection-String": CONNECTION_STRING },
        body: new Blob([body]).stream(),
        duplex: "half",
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect((await streamed.json()).message).toBe("request is too large (max is 10485760 bytes)");
    await stillServes();
  });
});

describe("credentials", () => {
  it("a wrong password gets Neon's 28P01, and so does an unknown user", async () => {
    for (const url of [connectionStringFor("owner", "wrong"), connectionStringFor("nobody", "s3cret-pw")]) {
      const error = await failure(neon(url).query("select 1"));
      expect(error).toBeInstanceOf(NeonDbError);
      expect(error.code).toBe("28P01");
      expect(error.message).toMatch(/^password authentication failed for user '(owner|nobody)'$/);
    }
    const res = await gw.post({ query: "select 1" }, { "Neon-Connection-String": "postgres://owner@gateway.test/db" });
    expect(res.status).toBe(400);
    expect((await res.json()).message).toBe("missing authentication credentials: required password");
    await stillServes();
  });

  it("each user runs as its role, with exactly that role's rights", async () => {
    expect(await reader.query("select current_user::text as role")).toEqual([{ role: ROLES.readonly }]);
    const table = uniqueName("rights");
    await owner.query(`create table ${table} (n int)`);
    await owner.query(`grant select, insert on ${table} to ${ROLES.app}`);
    await owner.query(`grant select on ${table} to ${ROLES.readonly}`);
    await worker.query(`insert into ${table} values (1)`);
    expect((await failure(worker.query(`create table ${table}_x (n int)`))).code).toBe("42501");
    expect((await failure(worker.query(`truncate ${table}`))).code).toBe("42501");
    expect((await failure(reader.query(`insert into ${table} values (2)`))).code).toBe("42501");
    expect(await reader.query(`select n from ${table}`)).toEqual([{ n: 1 }]);
    // Not even by asking for it.
    expect((await failure(worker.query(`set role ${ROLES.migrator}`))).code).toBe("42501");
    expect((await failure(worker.query(`select set_config('role', '${ROLES.migrator}', false)`))).code).toBe("42501");
    await stillServes();
  });
});

describe("role and session changes do not outlive their request", () => {
  it("SET ROLE and SET SESSION AUTHORIZATION are refused, and the next request runs as its own role", async () => {
    expect((await failure(owner.query(`set role ${ROLES.readonly}`))).code).toBe("42501");
    expect((await failure(owner.query(`set session authorization ${ROLES.readonly}`))).code).toBe("42501");
    await stillServes();
  });

  it("a role or session change the gateway could not see (dynamic SQL) is undone or the session replaced", async () => {
    const table = uniqueName("survives");
    await owner.query(`create table ${table} (n int)`);
    await owner.query(`insert into ${table} values (42)`);
    for (const statement of [`SET ROLE ${ROLES.readonly}`, `SET SESSION AUTHORIZATION ${ROLES.readonly}`]) {
      // On a server the login role may not do it (42501); on PGlite's superuser session it happens.
      await owner.query(`DO $$ BEGIN EXECUTE '${statement}'; END $$`).catch((e: NeonDbError) => {
        expect(e.code).toBe("42501");
      });
      await stillServes();
      expect(await owner.query(`select n from ${table}`)).toEqual([{ n: 42 }]);
    }
  });

  it("settings, prepared statements, advisory locks, temp tables and open transactions are reset", async () => {
    await owner.query("set work_mem = '7MB'");
    await owner.query("prepare leftover as select 1");
    await owner.query("select pg_advisory_lock(8)");
    await owner.query("create temp table leftover_temp (n int)");
    await owner.query("begin");
    expect(await owner.query("show work_mem")).not.toEqual([{ work_mem: "7MB" }]);
    expect((await failure(owner.query("execute leftover"))).code).toBe("26000");
    expect(
      await owner.query(
        "select count(*)::int as c from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
      ),
    ).toEqual([{ c: 0 }]);
    expect((await failure(owner.query("select * from leftover_temp"))).code).toBe("42P01");
    // Had the BEGIN survived, this would assign its transaction an id that the next request still sees.
    await owner.query("select pg_current_xact_id()");
    expect(await owner.query("select pg_current_xact_id_if_assigned() is null as fresh")).toEqual([{ fresh: true }]);
  });
});

describe("request data never becomes a prototype key", () => {
  it("a user named __proto__ is just an unknown user", async () => {
    for (const name of ["__proto__", "constructor", "toString"]) {
      const error = await failure(neon(connectionStringFor(name, "x")).query("select 1"));
      expect(error.code).toBe("28P01");
    }
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("an isolation level named after an Object member is invalid", async () => {
    for (const level of ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]) {
      const res = await gw.post({ queries: [{ query: "select 1" }] }, { "Neon-Batch-Isolation-Level": level });
      expect(res.status, level).toBe(400);
      expect((await res.json()).message).toBe("invalid isolation level");
    }
  });

  it("a column or application name __proto__ is an ordinary key", async () => {
    const res = await gw.post({ query: 'select 1 as "__proto__", 2 as polluted' }, { "Neon-Raw-Text-Output": "true" });
    const text = await res.text();
    expect(text).toContain('"rows":[{"__proto__":"1","polluted":"2"}]');
    const labelled = neon(`${connectionStringFor("worker")}?application_name=__proto__`);
    await labelled.query("select 1");
    const stats = gw.gateway.stats;
    expect(Object.hasOwn(stats.byApplication, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).requests).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  });
});

describe("foreign web pages", () => {
  it("get no CORS answer and no SQL, and the same gateway then serves this machine", async () => {
    const preflight = await gw.gateway.handle(
      new Request(ENDPOINT, {
        method: "OPTIONS",
        headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
      }),
    );
    expect(preflight.status).toBe(403);
    expect(preflight.headers.has("Access-Control-Allow-Origin")).toBe(false);
    const post = await gw.post({ query: "select 1" }, { Origin: "https://evil.example" });
    expect(post.status).toBe(403);
    expect(post.headers.has("Access-Control-Allow-Origin")).toBe(false);
    // DNS rebinding: a foreign name that resolves to 127.0.0.1.
    const rebound = await gw.gateway.handle(
      new Request("http://evil.example:8788/sql", {
        method: "POST",
        headers: { "Neon-Connection-String": CONNECTION_STRING },
        body: JSON.stringify({ query: "select 1" }),
      }),
    );
    expect(rebound.status).toBe(403);
    await stillServes();
  });

  it("listens on loopback only", async () => {
    const gateway = createGateway({ backend, users: TEST_USERS });
    await expect(listen(gateway, 0, "0.0.0.0")).rejects.toThrow(/loopback only/);
    const running = await listen(gateway);
    try {
      expect(running.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/sql$/);
      const res = await fetch(running.endpoint, {
        method: "POST",
        headers: { "Neon-Connection-String": CONNECTION_STRING },
        body: JSON.stringify({ query: "select 1 as one" }),
      });
      expect((await res.json()).rows).toEqual([{ one: 1 }]);
    } finally {
      await running.close();
    }
  });
});

describe("one gateway process over HTTP", () => {
  it("after a too-large query, a SET ROLE, a wrong password and a foreign preflight, answers the next query", async () => {
    const running = await listen(createGateway({ backend, users: TEST_USERS }));
    const post = (body: unknown, connection = connectionStringFor("worker")) =>
      fetch(running.endpoint, {
        method: "POST",
        headers: { "Neon-Connection-String": connection, "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
        body: JSON.stringify(body),
      });
    try {
      const big = await post({ query: "select a, b from generate_series(1, 5000) a, generate_series(1, 5000) b" });
      expect(big.status).toBe(507);
      expect((await big.json()).message).toBe("response is too large (max is 10485760 bytes)");
      const setRole = await post({ query: `set role ${ROLES.migrator}` });
      expect([setRole.status, (await setRole.json()).code]).toEqual([400, "42501"]);
      const wrong = await post({ query: "select 1" }, connectionStringFor("worker", "not-it"));
      expect([wrong.status, (await wrong.json()).code]).toEqual([400, "28P01"]);
      const preflight = await fetch(running.endpoint, {
        method: "OPTIONS",
        headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
      });
      expect(preflight.status).toBe(403);
      expect(preflight.headers.has("access-control-allow-origin")).toBe(false);
      const next = await post({ query: "select 1, current_user::text" });
      expect(next.status).toBe(200);
      expect((await next.json()).rows).toEqual([["1", ROLES.app]]);
    } finally {
      await running.close();
    }
  });
});

describe("the database goes away", () => {
  it("in-flight and idle backend sessions that are terminated never crash the gateway", async () => {
    const server = inject("serverDatabaseUrl");
    const table = uniqueName("terminated");
    await owner.query(`create table ${table} (n int)`);
    if (server) {
      // Requests that wait on a lock held here, then have their sessions terminated, as a restart would.
      const admin = new pg.Client({ connectionString: server });
      await admin.connect();
      try {
        await admin.query("select pg_advisory_lock(4242)");
        const waiting = Array.from({ length: 4 }, (_, i) =>
          worker.query("select pg_advisory_lock_shared(4242), $1::int as i", [i]).then(
            () => "answered",
            (e: Error) => e,
          ),
        );
        await until(async () => {
          const { rows } = await admin.query(
            "select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'",
            [APPLICATION],
          );
          return rows[0].n === 4; // the pool's size
        });
        await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1", [
          APPLICATION,
        ]);
        for (const outcome of await Promise.all(waiting)) {
          expect(outcome).toBeInstanceOf(NeonDbError); // 57P01, or the connection lost: never an answer
        }
        // And idle pooled sessions, terminated between requests. As on Neon, a request can meet a session
        // in the moment it is being terminated and fail; the ones after it are served.
        await settle();
        await stillServes();
        await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1", [
          APPLICATION,
        ]);
        await settle();
      } finally {
        await admin.end();
      }
    } else {
      // PGlite cannot be terminated from outside; closing the instance under the gateway is its equivalent.
      const dir = mkdtempSync(path.join(tmpdir(), "anchorpipe-pglite-"));
      const pglite = await PGlite.create(dir);
      const embedded = await createEmbeddedBackend({ dataDir: dir, pglite });
      try {
        await prepareMigrator(embedded.pool);
        const local = inProcessGateway(embedded);
        await local.post({ query: "create table kept (n int)" });
        await local.post({ query: "insert into kept values (7)" });
        const inFlight = Array.from({ length: 6 }, () => local.post({ query: "select count(*) from kept" }));
        await pglite.close();
        for (const res of await Promise.all(inFlight)) expect([200, 400, 500]).toContain(res.status);
        // Reopened from its folder, with its data.
        const res = await local.post({ query: "select n from kept" }, { "Neon-Raw-Text-Output": "true" });
        expect((await res.json()).rows).toEqual([{ n: "7" }]);
      } finally {
        await embedded.close();
        gw = inProcessGateway(backend);
        rmSync(dir, { recursive: true, force: true });
      }
    }
    await worker.query("select 1");
    await stillServes();
  });

  it("while it cannot be reached, requests get Neon's error (the Worker's 503), and serve again after", async () => {
    const server = inject("serverDatabaseUrl");
    if (server) {
      const proxy = await tcpProxy(new URL(server));
      const through = (url: string) => {
        const u = new URL(url);
        u.hostname = "127.0.0.1";
        u.port = String(proxy.port);
        return u.toString();
      };
      const logins = new Map(Object.entries(inject("serverLogins") ?? {}).map(([role, url]) => [role, through(url)]));
      const flaky = createServerBackend(through(server), { logins, applicationName: `${APPLICATION}-proxy` });
      try {
        const local = inProcessGateway(flaky);
        const sql = sqlClient("worker");
        expect(await sql.query("select 1 as one")).toEqual([{ one: 1 }]);
        proxy.cut();
        const error = await failure(sql.query("select 1 as one"));
        expect(error.message).toMatch(/HTTP status 5\d\d/);
        expect(isDatabaseUnavailable(error)).toBe(true);
        proxy.restore();
        expect(await sql.query("select 1 as one")).toEqual([{ one: 1 }]);
        expect(local.logs.some((entry) => entry.status === 500)).toBe(true);
      } finally {
        await flaky.close();
        await proxy.close();
        gw = inProcessGateway(backend);
      }
    } else {
      // An in-memory instance that stopped cannot come back: every request says so, and nothing crashes.
      const pglite = await PGlite.create();
      const embedded = await createEmbeddedBackend({ pglite });
      try {
        inProcessGateway(embedded);
        const sql = sqlClient("owner");
        await prepareMigrator(embedded.pool); // the roles the test users run as
        await pglite.close();
        for (let i = 0; i < 2; i++) {
          const error = await failure(sql.query("select 1 as one"));
          expect(error.message).toMatch(/HTTP status 500.*Couldn't connect to compute node/);
          expect(isDatabaseUnavailable(error)).toBe(true);
        }
      } finally {
        await embedded.close().catch(() => {});
        gw = inProcessGateway(backend);
      }
    }
    await stillServes();
  });
});

/** Each user's next requests succeed, after at most one failure per pooled session that was terminated. */
async function settle() {
  for (const sql of [owner, worker, reader]) {
    let failures = 0;
    while (
      !(await sql.query("select 1").then(
        () => true,
        () => false,
      ))
    ) {
      failures += 1;
      expect(failures).toBeLessThanOrEqual(4);
    }
  }
}

/** Polls database state (not the clock) until `done`. */
async function until(done: () => Promise<boolean>): Promise<void> {
  while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** A TCP forwarder to the database that can be cut (every connection dropped, new ones refused) and restored. */
async function tcpProxy(target: URL) {
  const sockets = new Set<Socket>();
  let up = true;
  const server: Server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = new Socket();
    upstream.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      up = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
