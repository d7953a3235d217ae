import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { SCHEDULE } from "../jobs";
import { checkDatabase } from "../services/db-health";
import { checkHealth, type HealthReport, jobPeriods } from "../services/health";

export const healthRoutes = new Hono<AppEnv>();

/**
 * How long one isolate reuses its last aggregate. The endpoint is public and costs a few queries (one a scan
 * of ingestions): concurrent and repeated calls within this window share one check, so polling it cannot
 * load the database. Keyed by the database it checked.
 */
export const HEALTH_CACHE_MS = 10_000;
const recent = new Map<string, { expires: number; answer: Promise<HealthReport & { timestamp: string }> }>();

/**
 * The aggregate: database, migrations, partitions, ingestion and the jobs' last successes. 503 names the
 * failing parts (README, Operations: what health means). `timestamp` says when it was checked.
 */
healthRoutes.get("/", async (c) => {
  const key = c.get("config").DATABASE_URL ?? "";
  let cached = recent.get(key);
  if (!cached || cached.expires <= Date.now()) {
    const answer = checkHealth({ db: c.get("db"), now: () => new Date(), jobPeriods: jobPeriods(SCHEDULE) }).then(
      (report) => ({ ...report, timestamp: new Date().toISOString() }),
    );
    cached = { expires: Date.now() + HEALTH_CACHE_MS, answer };
    recent.set(key, cached);
    answer.catch(() => recent.delete(key));
  }
  const body = await cached.answer;
  if (body.status === "healthy") return c.json(body);
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
