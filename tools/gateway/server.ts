import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import type { Gateway } from "./handler.ts";

export interface RunningGateway {
  /** e.g. `http://127.0.0.1:4444/sql`, the value for `NEON_HTTP_ENDPOINT`. */
  readonly endpoint: string;
  readonly port: number;
  close(): Promise<void>;
}

const LOOPBACK_ADDRESSES = new Set(["127.0.0.1", "::1", "localhost"]);

/** Serves a gateway over HTTP (Hono on @hono/node-server), on a loopback address only. Port 0 picks a free port. */
export async function listen(gateway: Gateway, port = 0, hostname = "127.0.0.1"): Promise<RunningGateway> {
  if (!LOOPBACK_ADDRESSES.has(hostname)) {
    throw new Error(`the gateway listens on loopback only (127.0.0.1, ::1 or localhost), not ${hostname}`);
  }
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: gateway.app.fetch, port, hostname, serverOptions: { maxHeaderSize: 64 * 1024 } }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
  const actualPort = (server.address() as AddressInfo).port;
  const host = hostname === "::1" ? "[::1]" : hostname;
  return {
    endpoint: `http://${host}:${actualPort}/sql`,
    port: actualPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}
