import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { SCHEDULE } from "../jobs";
import { checkDatabase } from "../services/db-health";
import { checkHealth, jobPeriods } from "../services/health";

export const healthRoutes = new Hono<AppEnv>();

/**
 * The aggregate: database, migrations, partitions, ingestion and the jobs' last successes. 503 names the
 * failing parts (README, Operations: what health means).
 */
healthRoutes.get("/", async (c) => {
  const health = await checkHealth({ db: c.get("db"), now: () => new Date(), jobPeriods: jobPeriods(SCHEDULE) });
  const body = { ...health, timestamp: new Date().toISOString() };
  if (health.status === "healthy") return c.json(body);
  c.header("Retry-After", "30");
  return c.json(body, 503);
});

/** Liveness: the Worker answers. Touches no database. */
healthRoutes.get("/live", (c) => c.json({ status: "ok", timestamp: new Date().toISOString() }));

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
