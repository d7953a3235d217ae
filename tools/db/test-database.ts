import pg from "pg";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../gateway/backends.ts";

export interface TestDatabase {
  backend: Backend;
  /** Direct connection string of the per-run database (server mode only). */
  connectionString: string | null;
  drop(): Promise<void>;
}

/**
 * A fresh database for one test run: an in-memory PGlite by default, or, when
 * DATABASE_URL names a server, a new uniquely named database on that server
 * that is dropped afterwards (so runs never see each other's rows).
 */
export async function createTestDatabase(serverUrl = process.env.DATABASE_URL): Promise<TestDatabase> {
  if (!serverUrl) {
    const backend = await createEmbeddedBackend();
    return { backend, connectionString: null, drop: () => backend.close() };
  }
  const name = `anchorpipe_test_${Date.now().toString(36)}_${process.pid}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const backend = createServerBackend(url.toString());
  return {
    backend,
    connectionString: url.toString(),
    async drop() {
      await backend.close();
      await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
