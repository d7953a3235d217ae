/**
 * `npm run dev`: the whole local stack in one command, supervised.
 *
 *   tools/dev-database.ts (child process): embedded PGlite (.data/pglite) or DATABASE_URL
 *     → migrations → demo repository → local Neon gateway on GATEWAY_PORT (default 8788)
 *   `wrangler dev` on PORT (default 8787), its DATABASE_URL the gateway as anchorpipe_app
 *
 * If either part stops on its own, this says which and why, stops the other
 * and exits with status 1 (nothing is restarted: a part that died is a bug to
 * see, not to hide). Ctrl-C (or SIGTERM) stops everything and exits 0. The
 * embedded database keeps its data between runs.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { parse as parseToml } from "smol-toml";
import type { DevDatabaseMessage } from "./dev-database.ts";
import { startLocalCron } from "./jobs/local-cron.ts";

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

/** How a child ended, in words. */
const ending = (code: number | null, signal: NodeJS.Signals | null) =>
  signal ? `was killed by ${signal}${signal === "SIGABRT" ? " (out of memory?)" : ""}` : `exited with status ${code}`;

let stopping = false;
let wrangler: ChildProcess | undefined;
let wranglerExited: Promise<void> = Promise.resolve();
let database: ChildProcess | undefined;
let databaseExited: Promise<void> = Promise.resolve();

const killWrangler = (signal: NodeJS.Signals) => {
  try {
    if (wrangler?.pid) process.kill(-wrangler.pid, signal);
  } catch {}
};

function groupAlive(): boolean {
  try {
    if (wrangler?.pid) process.kill(-wrangler.pid, 0);
    return wrangler?.pid !== undefined;
  } catch {
    return false;
  }
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  killWrangler("SIGTERM");
  if (database?.connected) database.send("stop");
  else database?.kill("SIGTERM");
  const forced = setTimeout(() => {
    killWrangler("SIGKILL");
    database?.kill("SIGKILL");
  }, 5_000);
  await Promise.all([wranglerExited, databaseExited]);
  clearTimeout(forced);
  // workerd can outlive wrangler for a moment: the group is gone only when its last process is.
  for (let i = 0; i < 100 && groupAlive(); i++) {
    killWrangler("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  process.exit(code);
}

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
// Whatever happens to this process, the Worker must not outlive it.
process.once("exit", () => killWrangler("SIGKILL"));

// --- the database and gateway -----------------------------------------------------------------------------
database = fork(path.join(import.meta.dirname, "dev-database.ts"), [], {
  // The same loader this process runs under (tsx), so the child runs TypeScript too.
  execArgv: process.execArgv,
  env: { ...process.env, GATEWAY_PORT: String(gatewayPort) },
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
let databaseReason = "";
const databaseProcess = database;
databaseExited = new Promise<void>((resolve) => databaseProcess.once("exit", () => resolve()));
database.on("exit", (code, signal) => {
  if (stopping) return;
  console.error(
    `\n✖ The database and gateway process (pid ${databaseProcess.pid}) ${ending(code, signal)}` +
      (databaseReason ? `:\n  ${databaseReason}` : ".") +
      "\n  Stopping wrangler dev.",
  );
  void stop(1);
});

const ready = await new Promise<Extract<DevDatabaseMessage, { type: "ready" }> | null>((resolve) => {
  databaseProcess.on("message", (message: DevDatabaseMessage) => {
    if (message.type === "ready") resolve(message);
    if (message.type === "fatal") databaseReason = message.message;
  });
  databaseProcess.once("exit", () => resolve(null));
});
if (!ready) {
  await databaseExited;
  // The exit handler has reported it and is stopping.
  await new Promise(() => {});
}
const { demo } = ready as Extract<DevDatabaseMessage, { type: "ready" }>;
console.log(`• Neon HTTP gateway: ${ready?.endpoint} (pid ${ready?.pid}); the Worker connects as anchorpipe_app`);

console.log(`
  anchorpipe edge is starting on http://localhost:${workerPort}

  Demo repository  ${demo.owner}/${demo.name}
  Repository id    ${demo.id}
  Signing secret   ${demo.secret}   (local only)
  Admin token      ${demo.adminToken}   (user demo-admin, 30 days; API reference: http://localhost:${workerPort}/docs)

  Try:  curl http://localhost:${workerPort}/api/health/db
        curl -H "Authorization: Bearer ${demo.adminToken}" http://localhost:${workerPort}/api/repos/${demo.id}/tests
        ANCHORPIPE_URL=http://localhost:${workerPort} ANCHORPIPE_REPO_ID=${demo.id} \\
        ANCHORPIPE_SECRET=${demo.secret} \\
        npm run upload -- --commit "$(git rev-parse HEAD)" --run-id local-1 test/fixtures/junit/pytest.xml test/fixtures/junit/surefire-flaky.xml
`);

// --- the Worker -------------------------------------------------------------------------------------------
const localWrangler = path.join(import.meta.dirname, "../node_modules/.bin/wrangler");
wrangler = spawn(
  existsSync(localWrangler) ? localWrangler : "wrangler",
  [
    "dev",
    "--port",
    String(workerPort),
    "--ip",
    HOST,
    "--var",
    `DATABASE_URL:${ready?.workerUrl}`,
    "--var",
    `DATABASE_URL_READONLY:${ready?.readonlyUrl}`,
    "--var",
    "NEON_LOCAL_GATEWAY:true",
    "--var",
    "ENVIRONMENT:development",
    "--var",
    `HMAC_KEK:${ready?.kek}`,
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
console.log(`• wrangler dev: pid ${wrangler.pid}`);
wranglerExited = new Promise<void>((resolve) => {
  wrangler?.once("exit", () => resolve());
  wrangler?.once("error", () => resolve());
});
// wrangler dev does not fire Cron Triggers: this does, at each minute one of wrangler.toml's crons is due
// (health every 5 minutes), so the jobs run on their schedule and write their job_runs rows.
const wranglerToml = parseToml(readFileSync(path.join(import.meta.dirname, "../wrangler.toml"), "utf8")) as {
  triggers?: { crons?: string[] };
};
const cron = startLocalCron({ workerUrl: `http://${HOST}:${workerPort}`, crons: wranglerToml.triggers?.crons ?? [] });
void wranglerExited.then(() => cron.stop());
wrangler.on("error", (error) => {
  if (stopping) return;
  console.error(`\n✖ wrangler dev could not be started: ${error.message}\n  Stopping the database and gateway.`);
  void stop(1);
});
wrangler.on("exit", (code, signal) => {
  if (stopping) return;
  console.error(
    `\n✖ wrangler dev (pid ${wrangler?.pid}) ${ending(code, signal)}.\n  Stopping the database and gateway.`,
  );
  void stop(1);
});
