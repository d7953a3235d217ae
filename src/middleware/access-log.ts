import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../app-env";
import { log } from "../lib/logger";
import { recordRequest } from "../services/metrics";

/**
 * The route pattern that answered (`/api/repos/:repoId/tests/:testId`), never the raw path: a path holds
 * ids and names, and a query string can hold anything. A request no endpoint matched (404, or refused by a
 * middleware before routing reached one) is "unmatched", so the logs and the metrics' label set stay bounded.
 */
export function routePattern(c: Context<AppEnv>): string {
  const routes = matchedRoutes(c);
  const responding = routes[c.req.routeIndex];
  if (responding && responding.method !== "ALL" && !responding.path.endsWith("*")) return responding.path;
  const endpoint = routes.find((route) => route.method !== "ALL" && !route.path.endsWith("*"));
  return endpoint?.path ?? "unmatched";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The repository a request was for, once the Worker knows it: set by the signed upload, or the route's
 * repoId once the caller was found to have a role on it. A path parameter alone is whatever the client
 * typed, so it is not logged.
 */
function knownRepoId(c: Context<AppEnv>): string | undefined {
  const set = c.get("repoId");
  if (set) return set;
  if (!c.get("role")) return undefined;
  const param = c.req.param("repoId");
  return typeof param === "string" && UUID.test(param) ? param : undefined;
}

/** One structured line per request, and the request's place in the latency histograms. */
export const accessLog = createMiddleware<AppEnv>(async (c, next) => {
  const started = performance.now();
  try {
    await next();
  } finally {
    const ms = Math.round((performance.now() - started) * 10) / 10;
    const route = routePattern(c);
    const status = c.res.status;
    recordRequest({ method: c.req.method, route, status, seconds: ms / 1000 });
    log.info("request", {
      requestId: c.get("requestId"),
      method: c.req.method,
      route,
      status,
      ms,
      repoId: knownRepoId(c),
    });
  }
});
