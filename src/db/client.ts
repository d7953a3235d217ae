import { neon, neonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-http";
import type { Config } from "../env";
import * as schema from "./schema";

export type Db = ReturnType<typeof createDb>;

/**
 * A drizzle client over Neon's SQL-over-HTTP, made per request (no pools in a
 * Worker). With NEON_LOCAL_GATEWAY the driver posts to the gateway listening
 * at DATABASE_URL's host and port; the endpoint is derived per query from the
 * connection string, so the driver's global setting is the same for every
 * request and cannot leak between them.
 */
export function createDb(config: Config & { DATABASE_URL: string }) {
  if (config.NEON_LOCAL_GATEWAY === "true") {
    neonConfig.fetchEndpoint = (host, port) => `http://${host}:${port || 5432}/sql`;
  }
  return drizzle({ client: neon(config.DATABASE_URL), schema, casing: "snake_case" });
}
