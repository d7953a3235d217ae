import { drizzle } from "drizzle-orm/neon-http";
import * as schema from "../../src/db/schema/index.ts";
import { migrateUp } from "../../tools/db/migrator.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";
import { inProcessGateway, sqlClient } from "./support.ts";

/** A fresh database of this run's kind (embedded or server) with every migration applied. */
export async function migratedDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase();
  await migrateUp(database.backend.pool);
  return database;
}

/** The Worker's client (drizzle over Neon HTTP, as anchorpipe_app) against a database, through the gateway in-process. */
export function workerDb(database: TestDatabase) {
  inProcessGateway(database.backend);
  return drizzle({ client: sqlClient("worker"), schema, casing: "snake_case" });
}
