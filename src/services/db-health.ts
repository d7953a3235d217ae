import { sql } from "drizzle-orm";
import type { Db } from "../db/client";

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
    const latencyMs = now() - started;
    const message = error instanceof Error ? error.message : String(error);
    // The driver reports a failed fetch as "Error connecting to database: …".
    const unreachable = /connecting to database|fetch failed|HTTP status 5\d\d/i.test(message);
    return {
      healthy: false,
      latencyMs,
      reason: unreachable ? "unreachable" : "error",
      detail: (error as { code?: string }).code ?? (error instanceof Error ? error.name : "Error"),
    };
  }
}
