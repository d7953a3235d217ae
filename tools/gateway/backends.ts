import { mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { createPgConfig } from "@electric-sql/pglite/node-postgres";
import pg from "pg";

/**
 * Where the gateway's SQL runs. Both kinds are reached through a node-postgres
 * pool, so one code path (extended protocol, session reset) serves both: the
 * embedded PGlite sits behind PGlite's node-postgres adapter (a single
 * connection, so requests are serialised), a server behind an ordinary pool.
 */
export interface Backend {
  readonly kind: "embedded" | "server";
  /** Safe to print: never contains a password. */
  readonly description: string;
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

/** Values come back exactly as PostgreSQL printed them. */
const rawText = { getTypeParser: () => (value: string) => value };

export interface EmbeddedOptions {
  /** A folder for the database files; omitted means in memory. */
  dataDir?: string;
  /** An already open PGlite instance (e.g. shared with the migration tool). */
  pglite?: PGlite;
}

export async function createEmbeddedBackend(options: EmbeddedOptions = {}): Promise<Backend> {
  if (options.dataDir) mkdirSync(path.dirname(options.dataDir), { recursive: true });
  const pglite = options.pglite ?? (await PGlite.create(options.dataDir ?? "memory://"));
  // pg-pool throws a client away after any query error and makes a new one. PGlite's adapter
  // connection must not be shared between those clients, so every client gets its own.
  class PGliteClient extends pg.Client {
    constructor(config: pg.ClientConfig = {}) {
      super({ ...config, ...createPgConfig(pglite) });
    }
  }
  const pool = new pg.Pool({ Client: PGliteClient, max: 1, types: rawText });
  return {
    kind: "embedded",
    description: options.dataDir ? `embedded PGlite (${options.dataDir})` : "embedded PGlite (in memory)",
    pool,
    async close() {
      await pool.end();
      if (!options.pglite) await pglite.close();
    },
  };
}

export function createServerBackend(connectionString: string, maxConnections = 8): Backend {
  const pool = new pg.Pool({ connectionString, max: maxConnections, types: rawText });
  // A connection that breaks while idle must not take the process down.
  pool.on("error", () => {});
  return {
    kind: "server",
    description: `PostgreSQL ${redactConnectionString(connectionString)}`,
    pool,
    close: () => pool.end(),
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
