import { NeonDbError, neon } from "@neondatabase/serverless";
import { sql as dsql, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/neon-http";
import {
  bigint,
  boolean,
  customType,
  date,
  doublePrecision,
  integer,
  interval,
  json,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  smallint,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../../tools/gateway/backends.ts";
import {
  connectionStringFor,
  ENDPOINT,
  type InProcessGateway,
  inProcessGateway,
  openTestBackend,
  sqlClient,
  uniqueName,
} from "./support.ts";

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => "bytea" });

/**
 * The unmodified @neondatabase/serverless driver and drizzle-orm/neon-http
 * against the gateway, on whichever backend this run uses (CI runs both).
 */
let backend: Backend;
let gw: InProcessGateway;
const sql = sqlClient();

beforeAll(async () => {
  backend = await openTestBackend();
  gw = inProcessGateway(backend);
});
afterAll(() => backend.close());

/** Awaits a query that must fail with a database error, and returns it. */
async function dbError(query: Promise<unknown>): Promise<NeonDbError> {
  const error = await query.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(NeonDbError);
  return error as NeonDbError;
}

describe("round trips through the driver", () => {
  const cases: [string, unknown, unknown][] = [
    ["null::text", null, null],
    ["$1::bool", true, true],
    ["$1::bool", false, false],
    ["$1::int2", -32768, -32768],
    ["$1::int4", 2147483647, 2147483647],
    // int8 and numeric come back as strings: no precision lost.
    ["$1::int8", "9223372036854775807", "9223372036854775807"],
    ["$1::numeric", "12345678901234567890.123456789", "12345678901234567890.123456789"],
    ["$1::float8", 0.1 + 0.2, 0.1 + 0.2],
    ["$1::float4", 1.5, 1.5],
    ["$1::text", "zürich – 東京 – 🚀 – ' \" \\", "zürich – 東京 – 🚀 – ' \" \\"],
    ["$1::uuid", "0b0e3e8c-5a4d-4d6e-9d1c-3a1f2b3c4d5e", "0b0e3e8c-5a4d-4d6e-9d1c-3a1f2b3c4d5e"],
    ["$1::jsonb", { a: [1, "two", null], b: { c: true } }, { a: [1, "two", null], b: { c: true } }],
    ["$1::json", { z: 1, a: 2 }, { z: 1, a: 2 }],
    [
      "$1::text[]",
      ["a", null, 'quo"te', "back\\slash", "com,ma", ""],
      ["a", null, 'quo"te', "back\\slash", "com,ma", ""],
    ],
    ["$1::int[]", [1, null, -3], [1, null, -3]],
  ];

  it.each(cases)("select %s with %j", async (expr, param, expected) => {
    const params = expr.includes("$1") ? [param] : [];
    const rows = await sql.query(`select ${expr} as v`, params);
    expect(rows).toEqual([{ v: expected }]);
  });

  it("bytea", async () => {
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    const [row] = await sql.query("select $1::bytea as v, '\\x00ff'::bytea as w", [bytes]);
    expect(Buffer.compare(row.v, bytes)).toBe(0);
    expect([...row.w]).toEqual([0, 255]);
  });

  it("date, timestamp, timestamptz and interval in UTC", async () => {
    const instant = new Date("2026-03-29T01:30:00.123Z");
    const [row] = await sql.query(
      "select $1::timestamptz as tz, '2026-02-03 04:05:06.789'::timestamp as ts, '2026-02-03'::date as d, '1 day 02:03:04.5'::interval as i, now()::text as now_text",
      [instant],
    );
    expect(row.tz).toEqual(instant);
    expect(row.ts).toBeInstanceOf(Date);
    expect(row.d).toBeInstanceOf(Date);
    expect(row.i).toMatchObject({ days: 1, hours: 2, minutes: 3, seconds: 4, milliseconds: 500 });
    expect(row.now_text).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$/);
  });

  it("raw text output follows Neon's session settings", async () => {
    const res = await gw.post(
      {
        query:
          "select '2026-02-03'::date, '1 day 02:00'::interval, '\\x0aff'::bytea, '2026-02-03 10:00+02'::timestamptz",
      },
      { "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
    );
    const body = await res.json();
    expect(body.rows).toEqual([["2026-02-03", "1 day 02:00:00", "\\x0aff", "2026-02-03 08:00:00+00"]]);
  });

  it("enums", async () => {
    const type = uniqueName("mood");
    await sql.query(`create type ${type} as enum ('sad', 'ok', 'happy')`);
    const [row] = await sql.query(`select $1::${type} as v, array['ok','happy']::${type}[] as arr`, ["happy"]);
    expect(row.v).toBe("happy");
    expect(row.arr).toBe("{ok,happy}"); // the driver has no parser for a custom array type
  });
});

describe("drizzle-orm/neon-http", () => {
  it("inserts and reads back every column type", async () => {
    const name = uniqueName("dz_types");
    const mood = pgEnum(`${name}_mood`, ["sad", "ok", "happy"]);
    const table = pgTable(name, {
      id: uuid().primaryKey().defaultRandom(),
      flag: boolean(),
      small: smallint(),
      regular: integer(),
      big: bigint({ mode: "bigint" }),
      money: numeric(),
      ratio: doublePrecision(),
      label: text(),
      blob: bytea(),
      day: date(),
      at: timestamp({ withTimezone: true }),
      naive: timestamp(),
      span: interval(),
      doc: json(),
      docb: jsonb(),
      tags: text().array(),
      counts: integer().array(),
      feeling: mood(),
      empty: text(),
    });
    const db = drizzle({ client: sql });
    await db.execute(dsql.raw(`create type "${name}_mood" as enum ('sad', 'ok', 'happy')`));
    await db.execute(
      dsql.raw(`create table "${name}" (id uuid primary key default gen_random_uuid(), flag bool, small int2,
        regular int4, big int8, money numeric, ratio float8, label text, blob bytea, day date, at timestamptz,
        naive timestamp, span interval, doc json, docb jsonb, tags text[], counts int[], feeling "${name}_mood", empty text)`),
    );
    const at = new Date("2026-11-27T10:11:12.345Z");
    const values = {
      flag: true,
      small: 7,
      regular: -123456,
      big: 9007199254740993n,
      money: "10.50",
      ratio: 2.5,
      label: "naïve ☃",
      blob: Buffer.from("hi"),
      day: "2026-11-27",
      at,
      naive: new Date("2026-11-27T10:11:12.000Z"),
      span: "01:02:03",
      doc: { nested: [1, { x: null }] },
      docb: { k: "v" },
      tags: ["x", 'y "quoted"', "NULL"],
      counts: [1, 2, 3],
      feeling: "ok" as const,
      empty: null,
    };
    const [inserted] = await db.insert(table).values(values).returning();
    const [read] = await db.select().from(table).where(eq(table.id, inserted.id));
    expect(read).toEqual({ ...values, id: inserted.id, blob: expect.anything(), span: "01:02:03" });
    expect(Buffer.from(read.blob as Uint8Array).toString()).toBe("hi");
  });

  it("db.batch runs as one transaction", async () => {
    const name = uniqueName("dz_batch");
    const db = drizzle({ client: sql });
    await db.execute(dsql.raw(`create table ${name} (n int primary key)`));
    const results = await db.batch([
      db.execute(dsql.raw(`insert into ${name} values (1), (2)`)),
      db.execute(dsql.raw(`select count(*)::int as c from ${name}`)),
    ]);
    expect(results[1].rows).toEqual([{ c: 2 }]);
  });
});

describe("result shapes", () => {
  it("fullResults and arrayMode", async () => {
    const full = await sql.query("select 1 as a, 'x' as b", [], { fullResults: true });
    expect(full).toMatchObject({ command: "SELECT", rowCount: 1, rows: [{ a: 1, b: "x" }], rowAsArray: false });
    expect(full.fields.map((f) => f.name)).toEqual(["a", "b"]);
    expect(full.fields[0]).toEqual({
      name: "a",
      tableID: 0,
      columnID: 0,
      dataTypeID: 23,
      dataTypeSize: 4,
      dataTypeModifier: -1,
      format: "text",
    });
    const arrays = await sql.query("select 1 as a, 'x' as b", [], { arrayMode: true });
    expect(arrays).toEqual([[1, "x"]]);
    const both = await sql.query("select 1 as a", [], { arrayMode: true, fullResults: true });
    expect(both).toMatchObject({ rows: [[1]], rowAsArray: true });
  });

  it("rowCount and command for each kind of statement", async () => {
    const name = uniqueName("shapes");
    const run = (q: string) => sql.query(q, [], { fullResults: true });
    expect(await run(`create table ${name} (n int)`)).toMatchObject({ command: "CREATE", rowCount: null, rows: [] });
    expect(await run(`insert into ${name} values (1), (2), (3)`)).toMatchObject({ command: "INSERT", rowCount: 3 });
    expect(await run(`update ${name} set n = n + 1 where n > 1`)).toMatchObject({ command: "UPDATE", rowCount: 2 });
    expect(await run(`select * from ${name}`)).toMatchObject({ command: "SELECT", rowCount: 3 });
    expect(await run(`delete from ${name}`)).toMatchObject({ command: "DELETE", rowCount: 3 });
    expect(await run("")).toMatchObject({ command: "", rowCount: null, rows: [], fields: [] });
  });

  it("without raw text and array mode, rows are typed JSON objects", async () => {
    const res = await gw.post({
      query:
        "select true as b, 2::int2 as s, 3 as i, 4::int8 as l, 1.5::numeric as n, 2.5::float8 as f, 'NaN'::float8 as nan, " +
        `'{"a":[1]}'::jsonb as j, array[1,null]::int[] as arr, array['x',null]::text[] as tarr, $1 as p, $2::int * 1 as q, now()::date as d`,
      params: [42, 42],
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.rowAsArray).toBe(false);
    const row = body.rows[0];
    expect(row).toMatchObject({
      b: true,
      s: 2,
      i: 3,
      l: "4",
      n: "1.5",
      f: 2.5,
      nan: "NaN",
      j: { a: [1] },
      arr: [1, null],
      tarr: ["x", null],
      p: "42",
      q: 42,
    });
    expect(row.d).toMatch(/^\d{4}-\d\d-\d\d$/);
  });

  it("plain JSON parameters become Postgres text the way Neon converts them", async () => {
    const res = await gw.post(
      {
        query: "select $1::text, $2::text, $3::text, $4::text, $5::text, $6::text",
        params: [
          null,
          "s",
          true,
          42,
          { k: 1 },
          [
            [1, "a"],
            [null, { k: 1 }],
          ],
        ],
      },
      { "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
    );
    const body = await res.json();
    expect(body.rows).toEqual([[null, "s", "true", "42", '{"k":1}', '{{1,"a"},{NULL,"{\\"k\\":1}"}}']]);
  });
});

describe("batches", () => {
  it("a batch that fails at its last statement leaves nothing behind", async () => {
    const name = uniqueName("atomic");
    await sql.query(`create table ${name} (n int primary key)`);
    const error = await dbError(
      sql.transaction([
        sql.query(`insert into ${name} values (1)`),
        sql.query(`insert into ${name} values (2)`),
        sql.query(`insert into ${name} values (1)`),
      ]),
    );
    expect(error.code).toBe("23505");
    expect(await sql.query(`select count(*)::int as c from ${name}`)).toEqual([{ c: 0 }]);
  });

  it.each([
    ["ReadUncommitted", "read uncommitted"],
    ["ReadCommitted", "read committed"],
    ["RepeatableRead", "repeatable read"],
    ["Serializable", "serializable"],
  ] as const)("isolation level %s reaches PostgreSQL", async (level, shown) => {
    const [, rows] = await sql.transaction([sql`select 1`, sql`show transaction_isolation`], { isolationLevel: level });
    expect(rows).toEqual([{ transaction_isolation: shown }]);
  });

  it("read-only and deferrable reach PostgreSQL and are echoed", async () => {
    const rows = await sql.transaction([sql`show transaction_read_only`, sql`show transaction_deferrable`], {
      isolationLevel: "Serializable",
      readOnly: true,
      deferrable: true,
    });
    expect(rows).toEqual([[{ transaction_read_only: "on" }], [{ transaction_deferrable: "on" }]]);
    const error = await dbError(sql.transaction([sql`create temp table nope (n int)`], { readOnly: true }));
    expect(error.code).toBe("25006");

    const res = await gw.post(
      { queries: [{ query: "select 1", params: [] }] },
      {
        "Neon-Batch-Isolation-Level": "Serializable",
        "Neon-Batch-Read-Only": "true",
        "Neon-Batch-Deferrable": "false",
      },
    );
    expect(res.headers.get("Neon-Batch-Isolation-Level")).toBe("Serializable");
    expect(res.headers.get("Neon-Batch-Read-Only")).toBe("true");
    expect(res.headers.has("Neon-Batch-Deferrable")).toBe(false);
  });

  it("a flag counts only when it is exactly 'true'", async () => {
    const res = await gw.post(
      { queries: [{ query: "show transaction_read_only" }] },
      { "Neon-Batch-Read-Only": "TRUE", "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
    );
    expect((await res.json()).results[0].rows).toEqual([["off"]]);
  });

  it("a query in a batch may override the array mode", async () => {
    const res = await gw.post(
      { queries: [{ query: "select 1 as a", arrayMode: false }, { query: "select 2 as b" }] },
      { "Neon-Array-Mode": "true", "Neon-Raw-Text-Output": "true" },
    );
    const body = await res.json();
    expect(body.results[0]).toMatchObject({ rows: [{ a: "1" }], rowAsArray: false });
    expect(body.results[1]).toMatchObject({ rows: [["2"]], rowAsArray: true });
  });

  it("rejects an invalid isolation level", async () => {
    const res = await gw.post({ queries: [{ query: "select 1" }] }, { "Neon-Batch-Isolation-Level": "Snapshot" });
    expect(res.status).toBe(400);
    expect((await res.json()).message).toBe("invalid isolation level");
  });
});

describe("errors", () => {
  it("a string with two statements fails with 42601, as on Neon", async () => {
    const error = await dbError(sql.query("select 1; select 2"));
    expect(error.code).toBe("42601");
    expect(error.message).toBe("cannot insert multiple commands into a prepared statement");
  });

  it("a parameter count mismatch is a protocol error", async () => {
    const error = await dbError(sql.query("select $1::int + $2::int", [1]));
    expect(error.code).toBe("08P01");
    expect(error.message).toMatch(/bind message supplies 1 parameters, but prepared statement "" requires 2/);
  });

  it("errors carry code, constraint, detail, table and position", async () => {
    const name = uniqueName("errs");
    await sql.query(`create table ${name} (n int constraint ${name}_pk primary key, c int check (c > 0))`);
    await sql.query(`insert into ${name} values (1, 1)`);
    const dup = await dbError(sql.query(`insert into ${name} values (1, 1)`));
    expect(dup).toMatchObject({
      code: "23505",
      constraint: `${name}_pk`,
      detail: "Key (n)=(1) already exists.",
      table: name,
      schema: "public",
      severity: "ERROR",
    });
    const syntax = await dbError(sql.query("select * fro nowhere"));
    expect(syntax).toMatchObject({ code: "42601", position: "10", message: 'syntax error at or near "fro"' });
  });

  it("the error body always has Neon's 17 keys", async () => {
    const res = await gw.post({ query: "select 1/0" });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(Object.keys(body).sort()).toEqual(
      [
        "message",
        "code",
        "detail",
        "hint",
        "position",
        "internalPosition",
        "internalQuery",
        "severity",
        "where",
        "table",
        "column",
        "schema",
        "dataType",
        "constraint",
        "file",
        "line",
        "routine",
      ].sort(),
    );
    expect(body).toMatchObject({ code: "22012", message: "division by zero", detail: null, constraint: null });
    expect(body.line).toBeTypeOf("string");
  });

  it("malformed request bodies are 400s with an empty code", async () => {
    for (const [body, message] of [
      ["{not json", /^could not parse the HTTP request body: /],
      [{ query: "select $1", params: null }, /params/],
      [{ params: [] }, /query/],
      [[1, 2], /JSON object/],
    ] as const) {
      const res = await gw.post(body);
      expect(res.status).toBe(400);
      const json = await res.json();
      expect(json.message).toMatch(message);
      expect(json.code).toBe("");
      expect(json.severity).toBe("");
    }
  });

  it("answers OPTIONS for loopback origins and 404 elsewhere", async () => {
    const options = await gw.gateway.handle(
      new Request(ENDPOINT, { method: "OPTIONS", headers: { Origin: "http://localhost:5173" } }),
    );
    expect(options.status).toBe(204);
    expect(options.headers.get("Access-Control-Allow-Origin")).toBe("http://localhost:5173");
    expect(options.headers.get("Access-Control-Allow-Headers")).toMatch(/Neon-Connection-String/);
    const other = await gw.gateway.handle(new Request("http://127.0.0.1/other", { method: "POST" }));
    expect(other.status).toBe(404);
  });
});

describe("sessions", () => {
  it("a SET in one request is gone in the next", async () => {
    await sql.query("set timezone = 'Asia/Tokyo'");
    await sql.query("set statement_timeout = 1234");
    expect(await sql.query("show timezone")).toEqual([{ TimeZone: "UTC" }]);
    expect(await sql.query("show statement_timeout")).toEqual([{ statement_timeout: "0" }]);
  });

  it("a stray BEGIN and temporary tables do not leak", async () => {
    await sql.query("begin");
    await sql.query("create temp table leak (n int)");
    expect(
      await sql.query(
        "select count(*)::int as c from pg_stat_activity where pid = pg_backend_pid() and state = 'idle in transaction'",
      ),
    ).toEqual([{ c: 0 }]);
    const error = await dbError(sql.query("select * from leak"));
    expect(error.code).toBe("42P01");
  });

  it("output settings match Neon's", async () => {
    const [row] = await sql.query(
      "select current_setting('DateStyle') as ds, current_setting('IntervalStyle') as iv, current_setting('bytea_output') as bo, current_setting('TimeZone') as tz, current_setting('server_encoding') as enc",
    );
    expect(row).toEqual({ ds: "ISO, MDY", iv: "postgres", bo: "hex", tz: "UTC", enc: "UTF8" });
  });
});

describe("limits", () => {
  it("a request body over 10 MiB is refused with 413", async () => {
    const big = "x".repeat(10 * 1024 * 1024 + 1);
    const error = await sql.query("select length($1)", [big]).catch((e: Error) => e);
    expect(String(error)).toMatch(/HTTP status 413/);
  });

  it("a response over 10 MiB is refused with 507", async () => {
    const error = await sql.query("select repeat('x', 11 * 1024 * 1024) as big").catch((e: Error) => e);
    expect(String(error)).toMatch(/HTTP status 507.*response is too large \(max is 10485760 bytes\)/);
  });

  it("just under the limits works", async () => {
    const [row] = await sql.query("select length($1) as n", ["y".repeat(9 * 1024 * 1024)]);
    expect(row.n).toBe(9 * 1024 * 1024);
  });
});

describe("logging", () => {
  it("logs each request without the connection string's password", async () => {
    gw.logs.length = 0;
    await sql.query("select 1");
    expect(gw.logs).toHaveLength(1);
    expect(gw.logs[0]).toMatchObject({ method: "POST", path: "/sql", status: 200, statements: 1, user: "owner" });
    expect(JSON.stringify(gw.logs)).not.toContain("s3cret-pw");
    expect(gw.logs[0].target).toMatch(/^postgres(ql)?:\/\/owner@gateway\.test:5432\/anchorpipe$/);
  });

  it("counts SQL requests", async () => {
    gw.gateway.resetStats();
    await sql.query("select 1");
    await sql.transaction([sql`select 1`, sql`select 2`]);
    const labelled = neon(`${connectionStringFor("worker")}?application_name=my-label`);
    await labelled.query("select 1");
    expect({ ...gw.gateway.stats }).toMatchObject({
      requests: 3,
      statements: 4,
      byUser: { owner: { requests: 2, statements: 3 }, worker: { requests: 1, statements: 1 } },
      byApplication: { "my-label": { requests: 1, statements: 1 } },
    });
    const res = await gw.gateway.handle(new Request("http://127.0.0.1/stats"));
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(gw.gateway.stats)));
  });
});
