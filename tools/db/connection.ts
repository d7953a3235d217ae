import path from "node:path";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../gateway/backends.ts";

/** Where `npm run dev` and the db:* commands keep the embedded database (git-ignored). */
export const DEV_DATA_DIR = path.resolve(import.meta.dirname, "../../.data/pglite");

/**
 * The database the Node-side tools work on: the server named by DATABASE_URL
 * when it is set, else the embedded dev database. A direct connection, never
 * SQL over HTTP.
 */
export function openDatabase(env: NodeJS.ProcessEnv = process.env): Promise<Backend> {
  const url = env.DATABASE_URL;
  return url ? Promise.resolve(createServerBackend(url, 2)) : createEmbeddedBackend({ dataDir: DEV_DATA_DIR });
}
