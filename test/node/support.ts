import { neon, neonConfig } from "@neondatabase/serverless";
import { inject } from "vitest";
import { prepareMigrator, ROLES } from "../../tools/db/roles.ts";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../../tools/gateway/backends.ts";
import type { GatewayUser } from "../../tools/gateway/credentials.ts";
import { createGateway, type Gateway, type RequestLogEntry } from "../../tools/gateway/handler.ts";

let backends = 0;

/**
 * This run's backend: a fresh in-memory PGlite, or the run's database on the server (with the run's login
 * roles; its sessions carry `applicationName`, so a test can find exactly its own in pg_stat_activity).
 * Either way the three roles exist and anchorpipe_migrator may create in schema public.
 */
export async function openTestBackend(applicationName = `test-${process.pid}-${++backends}`): Promise<Backend> {
  const url = inject("serverDatabaseUrl");
  const logins = inject("serverLogins");
  const backend = url
    ? createServerBackend(url, { max: 4, logins: new Map(Object.entries(logins ?? {})), applicationName })
    : await createEmbeddedBackend();
  await prepareMigrator(backend.pool);
  return backend;
}

/**
 * The in-process gateway's users. Tests act as `owner` (the schema owner, anchorpipe_migrator: DDL
 * allowed) unless they say otherwise; `worker` is the Worker's role, `reader` the read-only one.
 */
export const TEST_USERS: GatewayUser[] = [
  { name: "owner", password: "s3cret-pw", role: ROLES.migrator },
  { name: "worker", password: "w0rker-pw", role: ROLES.app },
  { name: "reader", password: "r3ader-pw", role: ROLES.readonly },
];

/** A connection string for one of TEST_USERS (the password must never be logged). */
export function connectionStringFor(name: string, password?: string): string {
  const user = TEST_USERS.find((u) => u.name === name);
  return `postgres://${encodeURIComponent(name)}:${encodeURIComponent(password ?? user?.password ?? "")}@gateway.test:5432/anchorpipe`;
}

export const CONNECTION_STRING = connectionStringFor("owner");

/** Where the driver posts in-process: a loopback host, as the gateway requires. */
export const ENDPOINT = "http://127.0.0.1/sql";

export interface InProcessGateway {
  gateway: Gateway;
  logs: RequestLogEntry[];
  /** Calls the gateway in-process, as an HTTP client would (as `owner` unless headers say otherwise). */
  post(body: unknown, headers?: Record<string, string>): Promise<Response>;
}

/**
 * Wires the unmodified Neon driver to an in-process gateway through
 * `neonConfig.fetchFunction`: every request still goes through the
 * gateway's full HTTP handling (headers, JSON bodies, status codes).
 */
export function inProcessGateway(backend: Backend, users: GatewayUser[] = TEST_USERS): InProcessGateway {
  const logs: RequestLogEntry[] = [];
  const gateway = createGateway({ backend, users, log: (entry) => logs.push(entry) });
  neonConfig.fetchEndpoint = ENDPOINT;
  neonConfig.fetchFunction = (url: string, init: RequestInit) => gateway.handle(new Request(url, init));
  return {
    gateway,
    logs,
    post: (body, headers = {}) =>
      gateway.handle(
        new Request(ENDPOINT, {
          method: "POST",
          body: typeof body === "string" ? body : JSON.stringify(body),
          headers: { "Neon-Connection-String": CONNECTION_STRING, ...headers },
        }),
      ),
  };
}

/** The Neon driver as a user of TEST_USERS (default: owner). */
export const sqlClient = (name = "owner") => neon(connectionStringFor(name));

let counter = 0;
/** A table name no other test uses, so tests can share one database. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}
