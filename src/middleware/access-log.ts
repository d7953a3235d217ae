import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env";
import { log } from "../lib/logger";

export const accessLog = createMiddleware<AppEnv>(async (c, next) => {
  const started = Date.now();
  await next();
  log.info("request", {
    requestId: c.get("requestId"),
    method: c.req.method,
    path: c.req.path,
    status: c.res.status,
    repoId: c.get("repoId"),
    ms: Date.now() - started,
  });
});
