/**
 * The real Worker under `wrangler dev`, for tools and tests that need the whole HTTP path
 * (bench:ingest, the uploader's end-to-end test):
 *
 *   caller ──HTTP──▶ wrangler dev (workerd running src/index.ts) ──Neon HTTP──▶ gateway ──▶ PostgreSQL
 *
 * `startWranglerDev()` resolves once GET /api/health/db answers 200, i.e. the Worker is up and can reach
 * its database. wrangler runs in its own process group (it starts workerd as a child), so `stop()` can
 * end the whole tree and waits until it has gone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { stripVTControlCharacters } from "node:util";

const ROOT = path.resolve(import.meta.dirname, "..");

export interface WranglerDevOptions {
  /** Bindings passed with `--var NAME:value` (override wrangler.toml's [vars] and .dev.vars). */
  vars: Record<string, string>;
  /** Default: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  ip?: string;
  /** wrangler's --log-level; default "warn". */
  logLevel?: "debug" | "info" | "log" | "warn" | "error" | "none";
  /** --persist-to: local state (cache, KV…) somewhere other than the shared .wrangler/state. */
  persistTo?: string;
  /** Copy wrangler's stderr to this process's stderr as it comes (it is always kept for errors). */
  echoStderr?: boolean;
  /** How long to wait for the health check; default 60 s. */
  readyTimeoutMs?: number;
  /** Default /api/health/db: 200 only when the Worker reaches its database. */
  healthPath?: string;
}

export interface WranglerDev {
  /** e.g. http://127.0.0.1:43123 */
  url: string;
  port: number;
  /** The wrangler process (leader of its process group). */
  pid: number;
  /** The workerd processes under wrangler, found once the Worker was healthy (empty off Linux). */
  workerdPids: number[];
  /** The last few KiB of wrangler's stderr. */
  stderrTail(): string;
  /** Ends wrangler and workerd (SIGTERM to the group, SIGKILL after 5 s) and waits until they have exited. */
  stop(): Promise<void>;
}

export class WranglerDevError extends Error {
  override name = "WranglerDevError";
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
      .once("error", reject)
      .listen(0, host, () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
  });
}

const TAIL_BYTES = 8 * 1024;

/** Starts `wrangler dev` on the project's wrangler.toml and waits until the Worker is healthy. */
export async function startWranglerDev(options: WranglerDevOptions): Promise<WranglerDev> {
  const ip = options.ip ?? "127.0.0.1";
  const port = options.port ?? (await freePort(ip));
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const url = `http://${ip}:${port}`;
  const args = ["dev", "--port", String(port), "--ip", ip, "--log-level", options.logLevel ?? "warn"];
  if (options.persistTo) args.push("--persist-to", options.persistTo);
  for (const [name, value] of Object.entries(options.vars)) args.push("--var", `${name}:${value}`);

  const local = path.join(ROOT, "node_modules/.bin/wrangler");
  const child = spawn(existsSync(local) ? local : "wrangler", args, {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    // Local runs need no network: no metrics, no download of the `Request.cf` sample.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    // Its own process group, so stop() reaches workerd too.
    detached: true,
  });

  let tail = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    if (options.echoStderr) process.stderr.write(chunk);
    tail = (tail + chunk).slice(-TAIL_BYTES);
  });
  let spawnError: Error | undefined;
  // A process that could not be spawned may never emit "exit".
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (error) => {
      spawnError = error;
      resolve();
    });
  });

  // Never leave a Worker behind if this process ends without calling stop().
  const killOnExit = () => signalGroup(child, "SIGKILL");
  process.once("exit", killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      process.removeListener("exit", killOnExit);
      const workerd = child.pid ? findWorkerdPids(child.pid) : [];
      signalGroup(child, "SIGTERM");
      const forced = setTimeout(() => signalGroup(child, "SIGKILL"), 5_000);
      try {
        await exited;
        // workerd may outlive wrangler for a moment.
        for (let i = 0; i < 100 && workerd.some(isAlive); i++) await sleep(50);
        if (workerd.some(isAlive)) signalGroup(child, "SIGKILL");
      } finally {
        clearTimeout(forced);
        child.stderr?.destroy();
      }
    })();
    return stopping;
  };

  const failure = (why: string) => {
    const stderr = stripVTControlCharacters(tail).trim();
    return new WranglerDevError(
      `wrangler dev on ${url} ${why}` +
        (stderr ? `; the end of its stderr:\n${stderr.split("\n").slice(-40).join("\n")}` : " (no stderr output)"),
    );
  };

  const deadline = Date.now() + timeoutMs;
  const healthUrl = `${url}${options.healthPath ?? "/api/health/db"}`;
  let lastStatus = "no answer";
  for (;;) {
    if (spawnError) {
      await stop();
      throw failure(`could not be started: ${spawnError.message}`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw failure(`exited (${child.exitCode ?? child.signalCode}) before the Worker became healthy`);
    }
    try {
      const res = await fetch(healthUrl, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      if (res.ok) break;
      lastStatus = `HTTP ${res.status}`;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw failure(
        `did not become healthy within ${Math.round(timeoutMs / 1000)} s (last health check: ${lastStatus})`,
      );
    }
    await sleep(250);
  }

  return {
    url,
    port,
    pid: child.pid as number,
    workerdPids: findWorkerdPids(child.pid as number),
    stderrTail: () => tail,
    stop,
  };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {}
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every descendant of `rootPid` whose command is workerd (from /proc; empty where there is none). */
export function findWorkerdPids(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirProc()) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), entry]);
    } catch {}
  }
  const found: number[] = [];
  const queue = [rootPid];
  while (queue.length) {
    const pid = queue.shift() as number;
    for (const child of children.get(pid) ?? []) {
      queue.push(child);
      try {
        if (readFileSync(`/proc/${child}/comm`, "utf8").trim() === "workerd") found.push(child);
      } catch {}
    }
  }
  return found;
}

function readdirProc(): number[] {
  try {
    return readdirSync("/proc")
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
}

/** Current resident set of the workerd processes, in MiB (benchmarks sample it during a request). */
export function workerdRssMiB(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
    } catch {}
  }
  return total;
}

/** Resident-set high-water mark of the workerd processes, in MiB. */
export function workerdPeakMiB(pids: number[]): number {
  let peak = 0;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
    } catch {}
  }
  return peak;
}
