/**
 * `npm run gateway`: the local Neon gateway on its own, in front of the
 * embedded dev database (.data/pglite) or the server in DATABASE_URL, with the
 * dev stack's users (one per role; passwords in .data/gateway-users.json).
 * Useful to point a `wrangler dev` you run yourself, or any Neon HTTP client,
 * at a local PostgreSQL. `npm run dev` starts the same thing for you.
 */
import { parseArgs } from "node:util";
import { openDatabase } from "../db/connection.ts";
import { loadDevRolePasswords, serveLocalGateway } from "../db/local-gateway.ts";
import { createLoginRoles } from "../db/roles.ts";

const { values } = parseArgs({
  options: { port: { type: "string", default: process.env.GATEWAY_PORT ?? "8788" }, quiet: { type: "boolean" } },
});

const serverUrl = process.env.DATABASE_URL;
const logins = serverUrl ? await createLoginRoles(serverUrl, "anchorpipe_gateway_cli") : undefined;
const backend = await openDatabase(process.env, logins);
const { running, urls } = await serveLocalGateway(backend, {
  passwords: loadDevRolePasswords(),
  port: Number(values.port),
  log: values.quiet
    ? undefined
    : (e) =>
        console.log(
          `${e.method} ${e.path} ${e.status} ${e.user ?? "-"} ${e.statements} statement(s) ${e.durationMs} ms`,
        ),
});
console.log(`Neon HTTP gateway on ${running.endpoint} → ${backend.description}`);
console.log(`Point the Worker at it with NEON_LOCAL_GATEWAY=true and DATABASE_URL=${urls.app}`);
console.log(`(read-only: ${urls.readonly}; schema owner: ${urls.migrator})`);

const stop = async () => {
  await running.close();
  await backend.close();
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
