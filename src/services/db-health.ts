import { sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { findSqlState } from "../lib/db-errors";

export type DbHealth =
  | { healthy: true; latencyMs: number }
  | { healthy: false; latencyMs: number; reason: "unreachable" | "error"; detail: string };

/**
 * One `select 1` round trip. Used by `GET /api/health/db` and the scheduled
 * health check; never throws.
 */
export async function checkDatabase(db: Db, now: () => number = Date.now): Promise<DbHealth> {
  const started = now();
  try {
    await db.execute(sql`select 1`);
    return { healthy: true, latencyMs: now() - started };
  } catch (error) {
    const sqlState = findSqlState(error);
    return {
      healthy: false,
      latencyMs: now() - started,
      // PostgreSQL answered with an error; anything else means we never reached it.
      reason: sqlState ? "error" : "unreachable",
      detail: sqlState ?? (error instanceof Error ? error.name : "Error"),
    };
  }
}
