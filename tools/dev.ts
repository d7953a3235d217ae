/**
 * `npm run dev`: the whole local stack in one command.
 *
 *   embedded PGlite (.data/pglite) or DATABASE_URL
 *     → migrations applied → demo repository ensured
 *     → local Neon gateway on GATEWAY_PORT (default 8788)
 *     → `wrangler dev` on PORT (default 8787), pointed at the gateway
 *
 * Ctrl-C stops everything; the embedded database keeps its data between runs.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { parseKeyring } from "../src/lib/keyring.ts";
import { openDatabase } from "./db/connection.ts";
import { ensureDemoRepo } from "./db/demo.ts";
import { loadDevKek } from "./db/dev-kek.ts";
import { migrateUp } from "./db/migrator.ts";
import { createGateway, listen } from "./gateway/index.ts";

const HOST = "127.0.0.1";
const workerPort = Number(process.env.PORT ?? 8787);
const gatewayPort = Number(process.env.GATEWAY_PORT ?? 8788);

async function assertPortFree(port: number, what: string, variable: string): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer()
      .once("error", () => resolve(false))
      .once("listening", () => probe.close(() => resolve(true)))
      .listen(port, HOST);
  });
  if (!free) {
    console.error(
      `\n✖ Port ${port} (${what}) is already in use. Is another \`npm run dev\` running?\n` +
        `  Stop it, or pick another port: ${variable}=<port> npm run dev\n`,
    );
    process.exit(1);
  }
}

await assertPortFree(workerPort, "the Worker", "PORT");
await assertPortFree(gatewayPort, "the database gateway", "GATEWAY_PORT");

const backend = await openDatabase().catch((error: Error) => {
  console.error(`\n✖ Could not open the database: ${error.message}`);
  if (!process.env.DATABASE_URL)
    console.error("  The embedded database lives in .data/pglite; delete it to start afresh.");
  process.exit(1);
});
console.log(`• database: ${backend.description}`);

const applied = await migrateUp(backend.pool);
console.log(`• migrations: ${applied.length ? `applied ${applied.join(", ")}` : "up to date"}`);

// The Worker decrypts stored secrets with this key; locally it is the dev key in .data/dev-kek.
const kek = process.env.HMAC_KEK ?? loadDevKek();
const demo = await ensureDemoRepo(backend, await parseKeyring(kek));

const gateway = createGateway({
  backend,
  log: (e) => {
    if (e.status >= 400) console.log(`  [gateway] ${e.status} ${e.statements} statement(s) ${e.durationMs}ms`);
  },
});
const running = await listen(gateway, gatewayPort, HOST);
console.log(`• Neon HTTP gateway: ${running.endpoint}`);

console.log(`
  anchorpipe edge is starting on http://localhost:${workerPort}

  Demo repository  ${demo.owner}/${demo.name}
  Repository id    ${demo.id}
  Signing secret   ${demo.secret}   (local only)

  Try:  curl http://localhost:${workerPort}/api/health/db
        ANCHORPIPE_URL=http://localhost:${workerPort} ANCHORPIPE_REPO_ID=${demo.id} \\
        ANCHORPIPE_SECRET=${demo.secret} \\
        npm run upload -- --commit "$(git rev-parse HEAD)" --run-id local-1 test/fixtures/junit/pytest.xml test/fixtures/junit/surefire-flaky.xml
`);

const wrangler = spawn(
  "wrangler",
  [
    "dev",
    "--port",
    String(workerPort),
    "--ip",
    HOST,
    "--var",
    `DATABASE_URL:postgres://anchorpipe:dev@${HOST}:${running.port}/anchorpipe`,
    "--var",
    "NEON_LOCAL_GATEWAY:true",
    "--var",
    "ENVIRONMENT:development",
    "--var",
    `HMAC_KEK:${kek}`,
  ],
  {
    // Its own process group, so stopping reaches workerd too however this process is stopped
    // (Ctrl-C, or a SIGTERM to npm alone). No stdin: a background group must not read the terminal.
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
    // Local development needs no network: no metrics, no download of the `Request.cf` sample.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  },
);
const wranglerExited = new Promise<void>((resolve) => wrangler.once("exit", () => resolve()));
const killWrangler = (signal: NodeJS.Signals) => {
  try {
    if (wrangler.pid) process.kill(-wrangler.pid, signal);
  } catch {}
};
process.once("exit", () => killWrangler("SIGKILL"));

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  killWrangler("SIGTERM");
  const forced = setTimeout(() => killWrangler("SIGKILL"), 5_000);
  await wranglerExited;
  clearTimeout(forced);
  await running.close();
  await backend.close();
  process.exit(code);
}

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => void stop(code ?? 0));
