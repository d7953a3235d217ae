import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import type { Gateway } from "./handler.ts";

export interface RunningGateway {
  /** e.g. `http://127.0.0.1:4444/sql`, the value for `NEON_HTTP_ENDPOINT`. */
  readonly endpoint: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves a gateway over HTTP on loopback. Port 0 picks a free port. */
export async function listen(gateway: Gateway, port = 0, hostname = "127.0.0.1"): Promise<RunningGateway> {
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: gateway.handle, port, hostname, serverOptions: { maxHeaderSize: 64 * 1024 } }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://${hostname}:${actualPort}/sql`,
    port: actualPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}
