import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env";
import { createDb, type Db } from "../db/client";
import { loadConfig } from "../env";
import { ApiError } from "../lib/errors";

/** Validates the bindings and makes this request's database client. */
export const configAndDb = createMiddleware<AppEnv>(async (c, next) => {
  const config = loadConfig(c.env);
  c.set("config", config);
  const db = config.DATABASE_URL ? createDb({ ...config, DATABASE_URL: config.DATABASE_URL }) : undefined;
  c.set("db", db);
  c.set(
    "readDb",
    db && config.DATABASE_URL_READONLY ? createDb({ ...config, DATABASE_URL: config.DATABASE_URL_READONLY }) : db,
  );
  await next();
});

export function requireDb(c: Context<AppEnv>): Db {
  const db = c.get("db");
  if (!db) throw new ApiError("service_unavailable", "The database is not configured.");
  return db;
}

/** The database for a read-only request: the replica when configured. */
export function requireReadDb(c: Context<AppEnv>): Db {
  requireDb(c);
  return c.get("readDb") as Db;
}
