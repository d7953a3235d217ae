import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKek } from "../../src/lib/keyring.ts";
import { migrateUp } from "../../tools/db/migrator.ts";
import { devLoginPrefix, dropLoginRoles } from "../../tools/db/roles.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";
import { findWorkerdPids, freePort } from "../../tools/wrangler-dev.ts";

/**
 * `npm run dev` as a developer runs it (tools/dev.ts under tsx), on this run's kind of database: a
 * scratch data folder for PGlite, or a fresh database on the server. If a part of the stack dies, the
 * rest is stopped and the command fails saying which; Ctrl-C stops everything.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
let database: TestDatabase | undefined;
let dataDir = "";
// The dev data folder keeps secrets encrypted under this key: the same one for every start.
const kek = generateKek();

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), "anchorpipe-dev-"));
  if (process.env.DATABASE_URL) {
    database = await createTestDatabase();
    await migrateUp(database.backend.pool);
  }
});
afterAll(async () => {
  if (database?.connectionString)
    await dropLoginRoles(process.env.DATABASE_URL as string, devLoginPrefix(database.connectionString));
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

interface DevStack {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  gatewayPid: number;
  wranglerPid: number;
  workerdPids: number[];
}

async function startDev(): Promise<DevStack> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    GATEWAY_PORT: String(await freePort()),
    ANCHORPIPE_DATA_DIR: dataDir,
    HMAC_KEK: kek,
    WRANGLER_LOG: "warn",
  };
  if (database?.connectionString) env.DATABASE_URL = database.connectionString;
  else delete env.DATABASE_URL;
  const child = spawn(path.join(ROOT, "node_modules/.bin/tsx"), ["tools/dev.ts"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => (output += chunk));
  child.stderr?.on("data", (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  // Ready when the Worker reaches its database through the gateway.
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm run dev exited early:\n${output}`);
    const healthy = await fetch(`http://127.0.0.1:${port}/api/health/db`)
      .then((res) => res.ok)
      .catch(() => false);
    if (healthy) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const gatewayPid = Number(/gateway: \S+ \(pid (\d+)\)/.exec(output)?.[1]);
  const wranglerPid = Number(/wrangler dev: pid (\d+)/.exec(output)?.[1]);
  return { child, output: () => output, exited, gatewayPid, wranglerPid, workerdPids: findWorkerdPids(wranglerPid) };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("npm run dev", () => {
  it("when the gateway dies, says so, stops wrangler dev and exits non-zero", async () => {
    const dev = await startDev();
    expect(dev.output()).toContain("the Worker connects as anchorpipe_app");
    expect(alive(dev.gatewayPid) && alive(dev.wranglerPid)).toBe(true);
    process.kill(dev.gatewayPid, "SIGKILL");
    const { code } = await dev.exited;
    expect(code).toBe(1);
    expect(dev.output()).toMatch(/The database and gateway process \(pid \d+\) was killed by SIGKILL/);
    expect(dev.output()).toContain("Stopping wrangler dev.");
    for (const pid of [dev.wranglerPid, ...dev.workerdPids]) expect(alive(pid), `pid ${pid}`).toBe(false);
  }, 120_000);

  it("Ctrl-C stops everything and exits 0", async () => {
    const dev = await startDev();
    dev.child.kill("SIGINT");
    const { code } = await dev.exited;
    expect(code).toBe(0);
    for (const pid of [dev.gatewayPid, dev.wranglerPid, ...dev.workerdPids])
      expect(alive(pid), `pid ${pid}`).toBe(false);
  }, 120_000);
});
