import type pg from "pg";
import { type Backend, redactConnectionString } from "./backends.ts";
import { errorBody, GatewayRequestError, isDatabaseError } from "./errors.ts";
import { toPgParam } from "./params.ts";
import { SessionManager } from "./session.ts";
import { converterFor, type ValueConverter } from "./typed-output.ts";

/** Neon's limits on request and response bodies. */
export const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
export const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

const ISOLATION_LEVELS: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};

const CORS_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Allow-Headers":
    "Authorization, Content-Type, Neon-Connection-String, Neon-Raw-Text-Output, Neon-Array-Mode, Neon-Batch-Isolation-Level, Neon-Batch-Read-Only, Neon-Batch-Deferrable",
  "Access-Control-Max-Age": "86400",
};

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  statements: number;
  /** The target named by `Neon-Connection-String`, password removed. */
  target: string | null;
}

export interface GatewayOptions {
  backend: Backend;
  log?: (entry: RequestLogEntry) => void;
}

export interface Gateway {
  /** The whole gateway as a fetch handler: usable in-process or behind an HTTP server. */
  handle(request: Request): Promise<Response>;
  /** SQL requests answered since start (or since `resetStats`), for benchmarks and round-trip tests. */
  readonly stats: GatewayStats;
  resetStats(): void;
}

export interface RequestCount {
  requests: number;
  statements: number;
}

/**
 * Counts of SQL requests, in all and by the user named in the connection
 * string. Tests give a Worker a connection string with a user of its own and
 * read its count back (GET /stats), which is how "database requests per
 * upload" is measured.
 */
export interface GatewayStats extends RequestCount {
  byUser: Record<string, RequestCount>;
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

export function createGateway({ backend, log }: GatewayOptions): Gateway {
  const sessions = new SessionManager(backend.pool);
  const arrayElementCache = new Map<number, Promise<number>>();
  const stats: GatewayStats = { requests: 0, statements: 0, byUser: {} };

  async function handle(request: Request): Promise<Response> {
    const started = performance.now();
    const url = new URL(request.url);
    let statements = 0;
    const response = await (async () => {
      if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS_HEADERS });
      if (url.pathname === "/stats" && request.method === "GET") return json(stats, 200);
      if (url.pathname !== "/sql") return json({ message: "not found" }, 404);
      if (request.method !== "POST") return json({ message: "method not allowed" }, 405);
      try {
        const parsed = await parseRequest(request);
        statements = parsed.queries.length;
        stats.requests++;
        stats.statements += statements;
        const user = userOf(request);
        if (user) {
          stats.byUser[user] ??= { requests: 0, statements: 0 };
          const count = stats.byUser[user];
          count.requests++;
          count.statements += statements;
        }
        return await execute(parsed);
      } catch (error) {
        return errorResponse(error);
      }
    })();
    log?.({
      method: request.method,
      path: url.pathname,
      status: response.status,
      durationMs: Math.round((performance.now() - started) * 100) / 100,
      statements,
      target: targetOf(request),
    });
    return response;
  }

  async function execute(parsed: ParsedRequest): Promise<Response> {
    const client = await sessions.acquire();
    let broken: Error | undefined;
    try {
      if (!parsed.batch) {
        const result = await runQuery(client, parsed.queries[0]);
        const body = await shape(client, result, parsed.mode);
        return sized(body, {});
      }
      const { isolation, readOnly, deferrable } = parsed.batch;
      const results: pg.QueryArrayResult[] = [];
      await client.query(
        [
          "START TRANSACTION",
          isolation && `ISOLATION LEVEL ${ISOLATION_LEVELS[isolation]}`,
          readOnly && "READ ONLY",
          deferrable && "DEFERRABLE",
        ]
          .filter(Boolean)
          .join(" "),
      );
      try {
        for (const query of parsed.queries) results.push(await runQuery(client, query));
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
      const shaped = [];
      for (const [i, result] of results.entries()) {
        const arrayMode = parsed.queries[i].arrayMode ?? parsed.mode.arrayMode;
        shaped.push(await shape(client, result, { ...parsed.mode, arrayMode }));
      }
      const headers: Record<string, string> = {};
      if (isolation) headers["Neon-Batch-Isolation-Level"] = isolation;
      if (readOnly) headers["Neon-Batch-Read-Only"] = "true";
      if (deferrable) headers["Neon-Batch-Deferrable"] = "true";
      return sized({ results: shaped }, headers);
    } catch (error) {
      if (!isDatabaseError(error) && !(error instanceof GatewayRequestError)) broken = error as Error;
      throw error;
    } finally {
      // The reset runs after the answer is ready; the connection is not reused before it finishes.
      void sessions.release(client, broken);
    }
  }

  function runQuery(client: pg.PoolClient, spec: QuerySpec): Promise<pg.QueryArrayResult> {
    // queryMode "extended" (missing from @types/pg) forces Parse/Bind/Execute even without
    // parameters, so two statements in one string fail with 42601 as they do on Neon.
    const config: pg.QueryArrayConfig & { queryMode: "extended" } = {
      text: spec.query,
      values: spec.params,
      rowMode: "array",
      queryMode: "extended",
    };
    return client.query(config);
  }

  async function shape(client: pg.PoolClient, result: pg.QueryArrayResult, mode: OutputMode) {
    const fields = (result.fields ?? []).map((f) => ({
      name: f.name,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeID: f.dataTypeID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      // PGlite's adapter reports the format as 0; Neon and node-postgres say "text".
      format: (f.format as unknown) === 0 || f.format === "text" ? "text" : "binary",
    }));
    let rows: unknown[][] = result.rows ?? [];
    if (!mode.rawText) {
      const converters: ValueConverter[] = [];
      for (const field of fields)
        converters.push(await converterFor(field.dataTypeID, (oid) => arrayElement(client, oid)));
      rows = rows.map((row) => row.map((value, i) => converters[i](value as string | null)));
    }
    return {
      fields,
      command: result.command ?? "",
      rowCount: result.rowCount ?? null,
      rows: mode.arrayMode ? rows : rows.map((row) => Object.fromEntries(fields.map((f, i) => [f.name, row[i]]))),
      rowAsArray: mode.arrayMode,
    };
  }

  function arrayElement(client: pg.PoolClient, oid: number): Promise<number> {
    let cached = arrayElementCache.get(oid);
    if (!cached) {
      cached = client
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
    handle,
    stats,
    resetStats() {
      stats.requests = 0;
      stats.statements = 0;
      stats.byUser = {};
    },
  };
}

interface ParsedRequest {
  queries: QuerySpec[];
  mode: OutputMode;
  batch?: { isolation?: string; readOnly: boolean; deferrable: boolean };
}

async function parseRequest(request: Request): Promise<ParsedRequest> {
  if (!request.headers.get("Neon-Connection-String")) {
    throw new GatewayRequestError("missing connection string: the Neon-Connection-String header is required");
  }
  const text = await readBody(request);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new GatewayRequestError(`could not parse the HTTP request body: ${(error as Error).message}`);
  }
  const flag = (name: string) => request.headers.get(name) === "true";
  const mode = { rawText: flag("Neon-Raw-Text-Output"), arrayMode: flag("Neon-Array-Mode") };
  if (!isObject(body)) throw new GatewayRequestError("could not parse the HTTP request body: expected a JSON object");

  if ("queries" in body) {
    if (!Array.isArray(body.queries)) {
      throw new GatewayRequestError("could not parse the HTTP request body: `queries` must be an array");
    }
    const isolation = request.headers.get("Neon-Batch-Isolation-Level") ?? undefined;
    if (isolation !== undefined && !(isolation in ISOLATION_LEVELS)) {
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

async function readBody(request: Request): Promise<string> {
  const declared = Number(request.headers.get("Content-Length") ?? 0);
  if (declared > MAX_REQUEST_BYTES) throw tooLarge();
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    size += read.value.byteLength;
    if (size > MAX_REQUEST_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(read.value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function tooLarge() {
  return new GatewayRequestError(`request is too large (max is ${MAX_REQUEST_BYTES} bytes)`, 413);
}

function sized(body: unknown, headers: Record<string, string>): Response {
  const text = JSON.stringify(body);
  if (Buffer.byteLength(text) > MAX_RESPONSE_BYTES) {
    throw new GatewayRequestError(`response is too large (max is ${MAX_RESPONSE_BYTES} bytes)`, 507);
  }
  return new Response(text, {
    status: 200,
    headers: { "Content-Type": "application/json", ...CORS_HEADERS, ...headers },
  });
}

function errorResponse(error: unknown): Response {
  if (error instanceof GatewayRequestError) return json(errorBody(error), error.status);
  if (isDatabaseError(error)) return json(errorBody(error), 400);
  // Not the client's fault and not PostgreSQL's: say so without internals.
  console.error("gateway: internal error:", error instanceof Error ? error.message : error);
  return json(errorBody(new Error("internal gateway error")), 500);
}

function json(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...CORS_HEADERS },
  });
}

function targetOf(request: Request): string | null {
  const value = request.headers.get("Neon-Connection-String");
  return value ? redactConnectionString(value) : null;
}

function userOf(request: Request): string | null {
  try {
    return decodeURIComponent(new URL(request.headers.get("Neon-Connection-String") ?? "").username) || null;
  } catch {
    return null;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
