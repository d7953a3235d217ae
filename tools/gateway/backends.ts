import { mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { createPgConfig } from "@electric-sql/pglite/node-postgres";
import pg from "pg";

/**
 * Where the gateway's SQL runs. Both kinds are reached through node-postgres
 * pools, so one code path (extended protocol, row-limited portals, session
 * reset) serves both.
 *
 * - **embedded**: PGlite behind its node-postgres adapter. One superuser
 *   session for everything, so requests are serialised and the gateway itself
 *   switches the role (`SET ROLE`) and keeps requests from changing the
 *   session's identity; a session that cannot be reset is replaced by
 *   reopening the instance (`recover`).
 * - **server**: a PostgreSQL server. `pool` connects as DATABASE_URL's user (for
 *   migrations and tools); the gateway's requests use a pool per role that
 *   logs in as a login role of that role (`logins`), so PostgreSQL itself
 *   enforces the role: a request cannot `RESET ROLE` its way to more rights.
 */
export interface Backend {
  readonly kind: "embedded" | "server";
  /** Safe to print: never contains a password. */
  readonly description: string;
  /** The backend's own connection (the superuser on PGlite, DATABASE_URL's user on a server). */
  readonly pool: pg.Pool;
  /** True when every role shares `pool`'s one session user (embedded): the gateway must set and guard the role. */
  readonly sharedSession: boolean;
  /** Connections for requests that run as `role` (null: as `pool`'s own user). */
  poolFor(role: string | null): pg.Pool;
  /**
   * Makes the database usable again after a session was found broken beyond a reset or the embedded
   * instance stopped. Returns false when it cannot (a stopped in-memory instance is gone).
   */
  recover(): Promise<boolean>;
  close(): Promise<void>;
}

/** Values come back exactly as PostgreSQL printed them. */
const rawText = { getTypeParser: () => (value: string) => value };

/** A connection that breaks while idle in a pool must not take the process down (the pool drops it). */
function quietPool(pool: pg.Pool): pg.Pool {
  pool.on("error", () => {});
  return pool;
}

export interface EmbeddedOptions {
  /** A folder for the database files; omitted means in memory. */
  dataDir?: string;
  /** An already open PGlite instance (e.g. shared with the migration tool). */
  pglite?: PGlite;
}

export async function createEmbeddedBackend(options: EmbeddedOptions = {}): Promise<Backend> {
  if (options.dataDir) mkdirSync(path.dirname(options.dataDir), { recursive: true });
  let pglite = options.pglite ?? (await PGlite.create(options.dataDir ?? "memory://"));
  let recovering: Promise<boolean> | undefined;
  // pg-pool throws a client away after a connection error and makes a new one. PGlite's adapter
  // connection must not be shared between those clients, so every client gets its own, on the
  // instance current at the time (recover() may have replaced it).
  class PGliteClient extends pg.Client {
    constructor(config: pg.ClientConfig = {}) {
      super({ ...config, ...createPgConfig(pglite) });
    }
  }
  const pool = quietPool(new pg.Pool({ Client: PGliteClient, max: 1, types: rawText }));

  async function reopen(): Promise<boolean> {
    if (pglite.closed) {
      // Stopped under us: only a folder can be opened again.
      if (!options.dataDir) return false;
      pglite = await PGlite.create(options.dataDir);
      return true;
    }
    // Open but with a session nothing can reset (e.g. after SET SESSION AUTHORIZATION on PGlite 0.5):
    // a new instance on the same data. In memory, the data moves over as a dump of the data folder.
    if (options.dataDir) {
      await pglite.close();
      pglite = await PGlite.create(options.dataDir);
    } else {
      const dump = await pglite.dumpDataDir("none");
      await pglite.close();
      pglite = await PGlite.create({ loadDataDir: dump });
    }
    return true;
  }

  return {
    kind: "embedded",
    description: options.dataDir ? `embedded PGlite (${options.dataDir})` : "embedded PGlite (in memory)",
    pool,
    sharedSession: true,
    poolFor: () => pool,
    recover() {
      recovering ??= reopen()
        .catch((error: Error) => {
          console.error(`gateway: could not reopen the embedded database: ${error.message}`);
          return false;
        })
        .finally(() => {
          recovering = undefined;
        });
      return recovering;
    },
    async close() {
      await pool.end();
      if (!options.pglite || pglite !== options.pglite) await pglite.close();
    },
  };
}

export interface ServerOptions {
  /** Connections per pool (the backend's own, and each role's). */
  max?: number;
  /** Direct connection strings of login roles, by the role their requests run as (e.g. anchorpipe_app). */
  logins?: ReadonlyMap<string, string>;
  /** `application_name` of every connection (shows in pg_stat_activity). */
  applicationName?: string;
}

export function createServerBackend(connectionString: string, options: ServerOptions = {}): Backend {
  const max = options.max ?? 8;
  // Without a timeout a server that stopped answering holds every request until TCP gives up.
  const poolConfig = {
    max,
    types: rawText,
    connectionTimeoutMillis: 10_000,
    application_name: options.applicationName ?? "anchorpipe-gateway",
  };
  const pool = quietPool(new pg.Pool({ connectionString, ...poolConfig }));
  const rolePools = new Map<string, pg.Pool>();
  return {
    kind: "server",
    description: `PostgreSQL ${redactConnectionString(connectionString)}`,
    pool,
    sharedSession: false,
    poolFor(role) {
      if (role === null) return pool;
      let rolePool = rolePools.get(role);
      if (!rolePool) {
        const login = options.logins?.get(role);
        if (!login)
          throw new Error(`no login role is configured for ${role} on ${redactConnectionString(connectionString)}`);
        rolePool = quietPool(new pg.Pool({ connectionString: login, ...poolConfig }));
        rolePools.set(role, rolePool);
      }
      return rolePool;
    },
    // A server session that cannot be reset is simply dropped by the pool; the server is not ours to restart.
    recover: async () => true,
    async close() {
      await Promise.all([pool.end(), ...[...rolePools.values()].map((p) => p.end())]);
    },
  };
}

/** `postgres://user:secret@host/db` → `postgres://user@host/db`. */
export function redactConnectionString(value: string): string {
  try {
    const url = new URL(value);
    url.password = "";
    url.search = "";
    return url.toString();
  } catch {
    return "(unparseable connection string)";
  }
}
