import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type Backend, redactConnectionString } from "./backends.ts";
import {
  authenticate,
  type GatewayUser,
  type GatewayUsers,
  gatewayUsers,
  parseConnectionString,
} from "./credentials.ts";
import {
  errorBody,
  GatewayRequestError,
  isDatabaseError,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  requestTooLarge,
  responseTooLarge,
} from "./errors.ts";
import { toPgParam } from "./params.ts";
import { ResponseBudget, runStatement, type StatementResult } from "./query.ts";
import { type Session, SessionManager } from "./session.ts";
import { converterFor, type ValueConverter } from "./typed-output.ts";

export { MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES };

/** Neon's header values for the batch isolation levels. A Map: a header value is never looked up on a prototype. */
const ISOLATION_LEVELS: ReadonlyMap<string, string> = new Map([
  ["ReadUncommitted", "READ UNCOMMITTED"],
  ["ReadCommitted", "READ COMMITTED"],
  ["RepeatableRead", "REPEATABLE READ"],
  ["Serializable", "SERIALIZABLE"],
]);

const ALLOWED_HEADERS =
  "Authorization, Content-Type, Neon-Connection-String, Neon-Raw-Text-Output, Neon-Array-Mode, Neon-Batch-Isolation-Level, Neon-Batch-Read-Only, Neon-Batch-Deferrable";

/** The gateway is a local tool: only this machine's own pages and programs may use it. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

export function isLoopbackOrigin(origin: string): boolean {
  try {
    const url = new URL(origin);
    return (url.protocol === "http:" || url.protocol === "https:") && LOOPBACK_HOSTS.has(url.hostname);
  } catch {
    return false;
  }
}

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  statements: number;
  /** The user named by `Neon-Connection-String` (never its password), if any. */
  user: string | null;
  /** The target named by `Neon-Connection-String`, password removed. */
  target: string | null;
}

export interface GatewayOptions {
  backend: Backend;
  /** Who may connect, and as which role their requests run (see GatewayUser). */
  users: Iterable<GatewayUser>;
  log?: (entry: RequestLogEntry) => void;
}

export interface RequestCount {
  requests: number;
  statements: number;
}

/**
 * Counts of SQL requests: in all, by user, and by the connection string's
 * `application_name`. Tests give a Worker a connection string with an
 * application name of its own and read its count back (GET /stats), which is
 * how "database requests per upload" is measured. The per-key objects have no
 * prototype: their keys come from requests.
 */
export interface GatewayStats extends RequestCount {
  byUser: Record<string, RequestCount>;
  byApplication: Record<string, RequestCount>;
}

export interface Gateway {
  /** The Hono app (POST /sql, OPTIONS /sql, GET /stats). */
  readonly app: Hono<{ Variables: { statements: number } }>;
  /** The whole gateway as a fetch handler: usable in-process or behind an HTTP server. */
  handle(request: Request): Promise<Response>;
  /** SQL requests answered since start (or since `resetStats`), for benchmarks and round-trip tests. */
  readonly stats: GatewayStats;
  resetStats(): void;
}

interface QuerySpec {
  query: string;
  params: (string | null)[];
  arrayMode?: boolean;
}

interface OutputMode {
  rawText: boolean;
  arrayMode: boolean;
}

interface ParsedRequest {
  queries: QuerySpec[];
  mode: OutputMode;
  batch?: { isolation?: string; readOnly: boolean; deferrable: boolean };
}

class Counter {
  readonly #total: RequestCount = { requests: 0, statements: 0 };
  readonly #byUser = new Map<string, RequestCount>();
  readonly #byApplication = new Map<string, RequestCount>();

  add(user: string, application: string | null, statements: number) {
    for (const count of [
      this.#total,
      Counter.#entry(this.#byUser, user),
      ...(application ? [Counter.#entry(this.#byApplication, application)] : []),
    ]) {
      count.requests++;
      count.statements += statements;
    }
  }

  static #entry(map: Map<string, RequestCount>, key: string): RequestCount {
    const count = map.get(key) ?? { requests: 0, statements: 0 };
    map.set(key, count);
    return count;
  }

  snapshot(): GatewayStats {
    const record = (map: Map<string, RequestCount>) => {
      const out: Record<string, RequestCount> = Object.create(null);
      for (const [key, count] of map) out[key] = { ...count };
      return out;
    };
    return { ...this.#total, byUser: record(this.#byUser), byApplication: record(this.#byApplication) };
  }

  reset() {
    this.#total.requests = 0;
    this.#total.statements = 0;
    this.#byUser.clear();
    this.#byApplication.clear();
  }
}

export function createGateway({ backend, users, log }: GatewayOptions): Gateway {
  const accepted: GatewayUsers = gatewayUsers(users);
  for (const user of accepted.values()) backend.poolFor(user.role); // a server without a login for a role fails now, not per request
  const sessions = new SessionManager(backend);
  const arrayElementCache = new Map<number, Promise<number>>();
  const counter = new Counter();
  const app = new Hono<{ Variables: { statements: number } }>();

  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    const header = c.req.header("Neon-Connection-String");
    let user: string | null = null;
    try {
      user = header ? parseConnectionString(header).user : null;
    } catch {}
    log?.({
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      durationMs: Math.round((performance.now() - started) * 100) / 100,
      statements: c.get("statements") ?? 0,
      user,
      target: header ? redactConnectionString(header) : null,
    });
  });

  // Loopback only, at every layer: the server listens on 127.0.0.1, a Host that is not loopback (DNS
  // rebinding) is refused, and so is any browser request from a page that is not on this machine.
  app.use("*", async (c, next) => {
    const hostname = new URL(c.req.url).hostname;
    const origin = c.req.header("Origin");
    if (!LOOPBACK_HOSTS.has(hostname) || (origin !== undefined && !isLoopbackOrigin(origin))) {
      return c.json(errorBody(new GatewayRequestError("forbidden: the local gateway serves this machine only")), 403);
    }
    await next();
    if (origin !== undefined) {
      c.res.headers.set("Access-Control-Allow-Origin", origin);
      c.res.headers.append("Vary", "Origin");
    }
  });

  app.options("/sql", (c) => {
    if (c.req.header("Origin") === undefined) return c.body(null, 403);
    return c.body(null, 204, {
      "Access-Control-Allow-Methods": "POST, OPTIONS",
      "Access-Control-Allow-Headers": ALLOWED_HEADERS,
      "Access-Control-Max-Age": "86400",
    });
  });

  app.get("/stats", (c) => c.json(counter.snapshot()));

  app.post(
    "/sql",
    bodyLimit({ maxSize: MAX_REQUEST_BYTES, onError: (c) => c.json(errorBody(requestTooLarge()), 413) }),
    async (c) => {
      try {
        const connection = parseConnectionString(c.req.header("Neon-Connection-String"));
        const user = authenticate(accepted, connection);
        const parsed = parseRequest(await c.req.text(), (name) => c.req.header(name));
        c.set("statements", parsed.queries.length);
        counter.add(user.name, connection.applicationName, parsed.queries.length);
        const { body, headers } = await execute(parsed, user);
        return c.body(body, 200, { "Content-Type": "application/json", ...headers });
      } catch (error) {
        const { status, body } = errorResponse(error);
        return c.json(body, status as 400);
      }
    },
  );
  app.all("/sql", (c) => c.json(errorBody(new GatewayRequestError("method not allowed", 405)), 405));
  app.notFound((c) => c.json(errorBody(new GatewayRequestError("not found", 404)), 404));
  app.onError((error, c) => {
    const { status, body } = errorResponse(error);
    return c.json(body, status as 500);
  });

  async function execute(
    parsed: ParsedRequest,
    user: GatewayUser,
  ): Promise<{ body: string; headers: Record<string, string> }> {
    if (backend.sharedSession) for (const query of parsed.queries) guardSessionIdentity(query.query, user);
    const session = await sessions.acquire(user.role);
    const budget = new ResponseBudget();
    let brokenBy: Error | undefined;
    try {
      if (!parsed.batch) {
        const result = await runStatement(
          session.client,
          parsed.queries[0].query,
          parsed.queries[0].params,
          budget,
          !parsed.mode.arrayMode,
        );
        return { body: sized(JSON.stringify(await shape(session, result, parsed.mode))), headers: {} };
      }
      const { isolation, readOnly, deferrable } = parsed.batch;
      const results: StatementResult[] = [];
      await session.client.query(
        [
          "START TRANSACTION",
          isolation && `ISOLATION LEVEL ${ISOLATION_LEVELS.get(isolation)}`,
          readOnly && "READ ONLY",
          deferrable && "DEFERRABLE",
        ]
          .filter(Boolean)
          .join(" "),
      );
      try {
        for (const query of parsed.queries) {
          const arrayMode = query.arrayMode ?? parsed.mode.arrayMode;
          results.push(await runStatement(session.client, query.query, query.params, budget, !arrayMode));
        }
        await session.client.query("COMMIT");
      } catch (error) {
        if (!session.broken) await session.client.query("ROLLBACK").catch(() => {});
        throw error;
      }
      const shaped: string[] = [];
      for (const [i, result] of results.entries()) {
        const arrayMode = parsed.queries[i].arrayMode ?? parsed.mode.arrayMode;
        shaped.push(JSON.stringify(await shape(session, result, { ...parsed.mode, arrayMode })));
      }
      const headers: Record<string, string> = {};
      if (isolation) headers["Neon-Batch-Isolation-Level"] = isolation;
      if (readOnly) headers["Neon-Batch-Read-Only"] = "true";
      if (deferrable) headers["Neon-Batch-Deferrable"] = "true";
      return { body: sized(`{"results":[${shaped.join(",")}]}`), headers };
    } catch (error) {
      if (session.broken) {
        brokenBy = session.broken;
        // What Neon's proxy answers when its connection fails under a query: 400, the driver's
        // message, no SQLSTATE (a database error such as 57P01 keeps its fields).
        if (!isDatabaseError(error)) throw new GatewayRequestError((error as Error).message || "connection closed");
      } else if (!isDatabaseError(error) && !(error instanceof GatewayRequestError)) {
        brokenBy = error as Error;
      }
      throw error;
    } finally {
      // The reset runs after the answer is ready; the connection is not reused before it finishes.
      void sessions.release(session, brokenBy);
    }
  }

  async function shape(session: Session, result: StatementResult, mode: OutputMode) {
    let rows: unknown[][] = result.rows;
    if (!mode.rawText && rows.length > 0) {
      const converters: ValueConverter[] = [];
      for (const field of result.fields) {
        converters.push(await converterFor(field.dataTypeID, (oid) => arrayElement(session, oid)));
      }
      rows = rows.map((row) => row.map((value, i) => converters[i](value as string | null)));
    }
    return {
      fields: result.fields,
      command: result.command,
      rowCount: result.rowCount,
      rows: mode.arrayMode ? rows : rows.map((row) => rowObject(result, row)),
      rowAsArray: mode.arrayMode,
    };
  }

  function arrayElement(session: Session, oid: number): Promise<number> {
    let cached = arrayElementCache.get(oid);
    if (!cached) {
      cached = session.client
        .query({
          text: "SELECT typelem FROM pg_catalog.pg_type WHERE oid = $1 AND typcategory = 'A'",
          values: [String(oid)],
          rowMode: "array",
        })
        .then((r) => (r.rows.length ? Number(r.rows[0][0]) : 0));
      arrayElementCache.set(oid, cached);
      cached.catch(() => arrayElementCache.delete(oid));
    }
    return cached;
  }

  return {
    app,
    handle: async (request) => app.fetch(request),
    get stats() {
      return counter.snapshot();
    },
    resetStats: () => counter.reset(),
  };
}

/**
 * On PGlite every role shares one superuser session, so PostgreSQL cannot stop a request from changing
 * who it runs as; the gateway does, with the error a server gives a non-superuser (42501). (A session
 * that changed anyway, through dynamic SQL, fails its reset check and the instance is reopened.)
 */
const SESSION_AUTHORIZATION = /session[\s_]+authorization/i;
const ROLE_CHANGE = /^\s*(?:set\s+(?:session\s+|local\s+)?|reset\s+)role\b|set_config\s*\(\s*'role'/i;

function guardSessionIdentity(query: string, user: GatewayUser): void {
  if (SESSION_AUTHORIZATION.test(query)) {
    throw new GatewayRequestError("permission denied to set session authorization", 400, "42501", "ERROR");
  }
  if (user.role !== null && ROLE_CHANGE.test(query)) {
    throw new GatewayRequestError(
      `permission denied to set role (requests of ${user.name} run as ${user.role})`,
      400,
      "42501",
      "ERROR",
    );
  }
}

/** An object row. `Object.fromEntries` defines keys, so a column named `__proto__` is just a key. */
function rowObject(result: StatementResult, row: unknown[]): Record<string, unknown> {
  return Object.fromEntries(result.fields.map((field, i) => [field.name, row[i]]));
}

function sized(body: string): string {
  if (Buffer.byteLength(body) > MAX_RESPONSE_BYTES) throw responseTooLarge();
  return body;
}

function parseRequest(text: string, header: (name: string) => string | undefined): ParsedRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new GatewayRequestError(`could not parse the HTTP request body: ${(error as Error).message}`);
  }
  const flag = (name: string) => header(name) === "true";
  const mode = { rawText: flag("Neon-Raw-Text-Output"), arrayMode: flag("Neon-Array-Mode") };
  if (!isObject(body)) throw new GatewayRequestError("could not parse the HTTP request body: expected a JSON object");

  if (Object.hasOwn(body, "queries")) {
    if (!Array.isArray(body.queries)) {
      throw new GatewayRequestError("could not parse the HTTP request body: `queries` must be an array");
    }
    const isolation = header("Neon-Batch-Isolation-Level");
    if (isolation !== undefined && !ISOLATION_LEVELS.has(isolation)) {
      throw new GatewayRequestError("invalid isolation level");
    }
    return {
      queries: body.queries.map(parseQuery),
      mode,
      batch: { isolation, readOnly: flag("Neon-Batch-Read-Only"), deferrable: flag("Neon-Batch-Deferrable") },
    };
  }
  return { queries: [parseQuery(body)], mode };
}

function parseQuery(value: unknown): QuerySpec {
  if (!isObject(value) || typeof value.query !== "string") {
    throw new GatewayRequestError("could not parse the HTTP request body: missing field `query`");
  }
  const params = value.params === undefined ? [] : value.params;
  if (!Array.isArray(params)) {
    throw new GatewayRequestError("could not parse the HTTP request body: `params` must be an array");
  }
  const arrayMode = typeof value.arrayMode === "boolean" ? value.arrayMode : undefined;
  return { query: value.query, params: params.map(toPgParam), arrayMode };
}

function errorResponse(error: unknown): { status: number; body: ReturnType<typeof errorBody> } {
  if (error instanceof GatewayRequestError) return { status: error.status, body: errorBody(error) };
  if (isDatabaseError(error)) return { status: 400, body: errorBody(error) };
  // Not the client's fault and not PostgreSQL's: say so without internals.
  console.error("gateway: internal error:", error instanceof Error ? error.message : error);
  return { status: 500, body: errorBody(new Error("internal gateway error")) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
