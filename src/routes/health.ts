import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { checkDatabase } from "../services/db-health";

export const healthRoutes = new Hono<AppEnv>();

/** Liveness: the Worker answers. Touches no database. */
healthRoutes.get("/", (c) => c.json({ status: "ok", timestamp: new Date().toISOString() }));

/** Readiness of the database path: Worker → Neon HTTP (or the local gateway) → PostgreSQL. */
healthRoutes.get("/db", async (c) => {
  const timestamp = new Date().toISOString();
  const db = c.get("db");
  if (!db) {
    c.header("Retry-After", "30");
    return c.json({ status: "unhealthy", database: "not_configured", timestamp }, 503);
  }
  const health = await checkDatabase(db);
  if (health.healthy) {
    return c.json({ status: "healthy", database: "connected", latencyMs: health.latencyMs, timestamp });
  }
  c.header("Retry-After", "30");
  return c.json(
    {
      status: "unhealthy",
      database: health.reason === "unreachable" ? "unreachable" : "error",
      latencyMs: health.latencyMs,
      timestamp,
    },
    503,
  );
});
