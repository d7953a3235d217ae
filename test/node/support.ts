import { neon, neonConfig } from "@neondatabase/serverless";
import { inject } from "vitest";
import { type Backend, createEmbeddedBackend, createServerBackend } from "../../tools/gateway/backends.ts";
import { createGateway, type Gateway, type RequestLogEntry } from "../../tools/gateway/handler.ts";

/** This run's backend: a fresh in-memory PGlite, or the run's database on the server. */
export async function openTestBackend(): Promise<Backend> {
  const url = inject("serverDatabaseUrl");
  return url ? createServerBackend(url, 4) : createEmbeddedBackend();
}

/** Any connection string will do: the gateway serves its one backend; the password must never be logged. */
export const CONNECTION_STRING = "postgres://app:s3cret-pw@gateway.test:5432/anchorpipe";

export interface InProcessGateway {
  gateway: Gateway;
  logs: RequestLogEntry[];
  /** Calls the gateway in-process, as an HTTP client would. */
  post(body: unknown, headers?: Record<string, string>): Promise<Response>;
}

/**
 * Wires the unmodified Neon driver to an in-process gateway through
 * `neonConfig.fetchFunction`: every request still goes through the
 * gateway's full HTTP handling (headers, JSON bodies, status codes).
 */
export function inProcessGateway(backend: Backend): InProcessGateway {
  const logs: RequestLogEntry[] = [];
  const gateway = createGateway({ backend, log: (entry) => logs.push(entry) });
  neonConfig.fetchEndpoint = "http://gateway.test/sql";
  neonConfig.fetchFunction = (url: string, init: RequestInit) => gateway.handle(new Request(url, init));
  return {
    gateway,
    logs,
    post: (body, headers = {}) =>
      gateway.handle(
        new Request("http://gateway.test/sql", {
          method: "POST",
          body: typeof body === "string" ? body : JSON.stringify(body),
          headers: { "Neon-Connection-String": CONNECTION_STRING, ...headers },
        }),
      ),
  };
}

export const sqlClient = () => neon(CONNECTION_STRING);

let counter = 0;
/** A table name no other test uses, so tests can share one database. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}
