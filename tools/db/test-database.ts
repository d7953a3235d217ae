import pg from "pg";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../gateway/backends.ts";
import { createLoginRoles, dropLoginRoles, ensureGroupRoles, prepareMigrator } from "./roles.ts";

export interface TestDatabase {
  backend: Backend;
  /** Direct connection string of the per-run database as the server's administrator (server mode only). */
  connectionString: string | null;
  /**
   * Direct connection strings of this database's login roles, by the role each runs as
   * (anchorpipe_migrator, anchorpipe_app, anchorpipe_readonly); server mode only.
   */
  logins: ReadonlyMap<string, string> | null;
  drop(): Promise<void>;
}

/**
 * A fresh database for one test run: an in-memory PGlite by default, or, when
 * DATABASE_URL names a server, a new uniquely named database on that server,
 * with login roles of its own for the three roles (named after the database,
 * so concurrent runs never share or change each other's), dropped afterwards.
 */
export async function createTestDatabase(serverUrl = process.env.DATABASE_URL): Promise<TestDatabase> {
  if (!serverUrl) {
    const backend = await createEmbeddedBackend();
    await prepareMigrator(backend.pool);
    return { backend, connectionString: null, logins: null, drop: () => backend.close() };
  }
  const name = `anchorpipe_test_${Date.now().toString(36)}_${process.pid}_${(counter++).toString(36)}`;
  await adminQuery(serverUrl, async (admin) => {
    await ensureGroupRoles(admin);
    await admin.query(`CREATE DATABASE ${name}`);
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  await adminQuery(url.toString(), prepareMigrator);
  const logins = await createLoginRoles(url.toString(), name);
  const backend = createServerBackend(url.toString(), { logins });
  return {
    backend,
    connectionString: url.toString(),
    logins,
    async drop() {
      await backend.close();
      await adminQuery(serverUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
      await dropLoginRoles(serverUrl, name);
    },
  };
}

let counter = 0;

async function adminQuery(url: string, work: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
}
