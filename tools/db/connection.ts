import path from "node:path";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../gateway/backends.ts";

/**
 * Where `npm run dev` and the db:* commands keep local data (git-ignored): the embedded database in
 * `pglite/`, the gateway's passwords. ANCHORPIPE_DATA_DIR moves it (e.g. a scratch stack in a test).
 */
export const devDataRoot = (env: NodeJS.ProcessEnv = process.env) =>
  path.resolve(env.ANCHORPIPE_DATA_DIR ?? path.join(import.meta.dirname, "../../.data"));

/** The embedded dev database's folder. */
export const DEV_DATA_DIR = path.join(devDataRoot({}), "pglite");

/**
 * The database the Node-side tools work on: the server named by DATABASE_URL
 * when it is set, else the embedded dev database. A direct connection, never
 * SQL over HTTP. `logins` (server only) are the login roles the gateway's
 * requests use, by role.
 */
export function openDatabase(
  env: NodeJS.ProcessEnv = process.env,
  logins?: ReadonlyMap<string, string>,
): Promise<Backend> {
  const url = env.DATABASE_URL;
  return url
    ? Promise.resolve(createServerBackend(url, { max: 4, logins }))
    : createEmbeddedBackend({ dataDir: path.join(devDataRoot(env), "pglite") });
}
