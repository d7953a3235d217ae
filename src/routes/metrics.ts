import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { ApiError } from "../lib/errors";
import { log } from "../lib/logger";
import { readDatabaseFacts, renderMetrics } from "../services/metrics";
import { operatorTokenMatches } from "../services/operator-token";

export const metricsRoutes = new Hono<AppEnv>();

/**
 * Prometheus text format behind the operator token (`Authorization: Bearer <OPERATOR_TOKEN>`). Without the
 * secret the endpoint does not exist (404); a missing or wrong token is 401. When the database does not
 * answer, the isolate's own series are still served, with anchorpipe_up 0.
 */
metricsRoutes.get("/", async (c) => {
  const expected = c.get("config").OPERATOR_TOKEN;
  if (!expected) throw new ApiError("not_found", "Not found.");
  if (!(await operatorTokenMatches(c.req.header("Authorization"), expected))) {
    c.header("WWW-Authenticate", 'Bearer realm="anchorpipe-metrics"');
    throw new ApiError("unauthorized", "A valid operator token is required.");
  }
  const db = c.get("readDb");
  const facts = db
    ? await readDatabaseFacts({ db }).catch((error: unknown) => {
        log.warn("metrics.database_unavailable", { error: error instanceof Error ? error.name : "Error" });
        return null;
      })
    : null;
  c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  return c.body(renderMetrics(facts));
});
