/**
 * The database half of `npm run dev`, run by tools/dev.ts as a child process:
 *
 *   embedded PGlite (.data/pglite) or DATABASE_URL
 *     → migrations applied (as anchorpipe_migrator) → demo repository ensured
 *     → local Neon gateway on GATEWAY_PORT (default 8788), one user per role
 *
 * It reports `ready` (or `fatal` with the reason) to its parent over IPC and
 * stops when the parent says so or goes away. Keeping the database in its own
 * process lets the parent notice when it dies, whatever the cause, and stop
 * the rest of the stack.
 */
import { parseKeyring } from "../src/lib/keyring.ts";
import { openDatabase } from "./db/connection.ts";
import { type DemoRepo, ensureDemoRepo } from "./db/demo.ts";
import { loadDevKek } from "./db/dev-kek.ts";
import { loadDevRolePasswords, serveLocalGateway } from "./db/local-gateway.ts";
import { migrateUp } from "./db/migrator.ts";
import { createLoginRoles, devLoginPrefix } from "./db/roles.ts";

export type DevDatabaseMessage =
  | {
      type: "ready";
      description: string;
      endpoint: string;
      pid: number;
      /** The Worker's DATABASE_URL: the gateway as anchorpipe_app. */
      workerUrl: string;
      /** The Worker's DATABASE_URL_READONLY: the gateway as anchorpipe_readonly, as a read replica would be. */
      readonlyUrl: string;
      kek: string;
      demo: DemoRepo;
    }
  | { type: "fatal"; message: string };

const send = (message: DevDatabaseMessage) => process.send?.(message);

/** Tells the parent why, then exits (once the message is out). */
function fail(message: string): void {
  if (!process.send || !process.connected) process.exit(1);
  process.send({ type: "fatal", message } satisfies DevDatabaseMessage, () => process.exit(1));
}

process.on("uncaughtException", (error) => fail(`uncaught exception: ${error.stack ?? error.message}`));
process.on("unhandledRejection", (error) =>
  fail(`unhandled rejection: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`),
);
// Ctrl-C reaches the whole foreground process group; the parent decides when this process stops.
process.on("SIGINT", () => {});

async function main() {
  const gatewayPort = Number(process.env.GATEWAY_PORT ?? 8788);
  const serverUrl = process.env.DATABASE_URL;
  const logins = serverUrl ? await createLoginRoles(serverUrl, devLoginPrefix(serverUrl)) : undefined;
  const backend = await openDatabase(process.env, logins).catch((error: Error) => {
    const hint = serverUrl ? "" : " (the embedded database lives in .data/pglite; delete it to start afresh)";
    throw new Error(`could not open the database: ${error.message}${hint}`);
  });
  const applied = await migrateUp(backend.pool);
  console.log(`• database: ${backend.description}`);
  console.log(`• migrations: ${applied.length ? `applied ${applied.join(", ")}` : "up to date"}`);

  // The Worker decrypts stored secrets with this key; locally it is the dev key in .data/dev-kek.
  const kek = process.env.HMAC_KEK ?? loadDevKek();
  const demo = await ensureDemoRepo(backend, await parseKeyring(kek));
  const { running, urls } = await serveLocalGateway(backend, {
    passwords: loadDevRolePasswords(),
    port: gatewayPort,
    log: (e) => {
      if (e.status >= 400)
        console.log(`  [gateway] ${e.status} ${e.user ?? "-"} ${e.statements} statement(s) ${e.durationMs}ms`);
    },
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await running.close();
    await backend.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("disconnect", () => void stop()); // the parent is gone
  process.on("message", (message) => {
    if (message === "stop") void stop();
  });

  send({
    type: "ready",
    description: backend.description,
    endpoint: running.endpoint,
    pid: process.pid,
    workerUrl: urls.app,
    readonlyUrl: urls.readonly,
    kek,
    demo,
  });
}

main().catch((error: Error) => fail(error.message));
