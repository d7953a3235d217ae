import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { migrateUp } from "../tools/db/migrator.ts";
import { createTestDatabase } from "../tools/db/test-database.ts";
import { createGateway, listen } from "../tools/gateway/index.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** What the Worker under test gets as DATABASE_URL: the gateway's address, in a connection string. */
    workerDatabaseUrl: string;
    /** The per-run server database for Node tests, or null when the run uses embedded PGlite. */
    serverDatabaseUrl: string | null;
    backendKind: "embedded" | "server";
    /** The gateway's base URL, for reading request counts (GET /stats). */
    gatewayUrl: string;
    /** This run's key-encryption key for HMAC secrets. */
    hmacKek: string;
  }
}

/**
 * Runs once per `npm test`, in Node: makes this run's database, applies the
 * migrations, and serves it through the local Neon gateway on a free port.
 */
export default async function setup({ provide }: TestProject) {
  const database = await createTestDatabase();
  await migrateUp(database.backend.pool);
  const gateway = createGateway({ backend: database.backend });
  const running = await listen(gateway);
  console.log(`test database: ${database.backend.description}; gateway on port ${running.port}`);

  provide("workerDatabaseUrl", `postgres://anchorpipe:test@127.0.0.1:${running.port}/anchorpipe`);
  provide("serverDatabaseUrl", database.connectionString);
  provide("backendKind", database.backend.kind);
  provide("gatewayUrl", `http://127.0.0.1:${running.port}`);
  provide("hmacKek", `1:${randomBytes(32).toString("base64")}`);

  return async () => {
    await running.close();
    await database.drop();
  };
}
