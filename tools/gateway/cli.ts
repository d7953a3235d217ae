/**
 * `npm run gateway`: the local Neon gateway on its own, in front of the
 * embedded dev database (.data/pglite) or the server in DATABASE_URL. Useful
 * to point a `wrangler dev` you run yourself, or any Neon HTTP client, at a
 * local PostgreSQL. `npm run dev` starts the same thing for you.
 */
import { parseArgs } from "node:util";
import { openDatabase } from "../db/connection.ts";
import { createGateway, listen } from "./index.ts";

const { values } = parseArgs({
  options: { port: { type: "string", default: process.env.GATEWAY_PORT ?? "8788" }, quiet: { type: "boolean" } },
});

const backend = await openDatabase();
const gateway = createGateway({
  backend,
  log: values.quiet
    ? undefined
    : (e) =>
        console.log(
          `${e.method} ${e.path} ${e.status} ${e.statements} statement(s) ${e.durationMs} ms ${e.target ?? ""}`,
        ),
});
const running = await listen(gateway, Number(values.port));
console.log(`Neon HTTP gateway on ${running.endpoint} → ${backend.description}`);
console.log(
  `Point the Worker at it with DATABASE_URL=postgres://anchorpipe:dev@127.0.0.1:${running.port}/anchorpipe and NEON_LOCAL_GATEWAY=true`,
);

const stop = async () => {
  await running.close();
  await backend.close();
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
