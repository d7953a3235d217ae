import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env";

/**
 * The headers every API answer carries (spec/api.md, "Answers"): nothing is
 * cached, sniffed or framed, no referrer leaks, and a JSON answer can run
 * nothing. The /docs page sets its own policy (it runs Scalar's script).
 */
export const securityHeaders = createMiddleware<AppEnv>(async (c, next) => {
  await next();
  const headers = c.res.headers;
  headers.set("X-Content-Type-Options", "nosniff");
  headers.set("X-Frame-Options", "DENY");
  headers.set("Referrer-Policy", "no-referrer");
  if (!headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
  if (!headers.has("Content-Security-Policy")) {
    headers.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  }
});

/** The reference page loads its script and styles from this origin only, and talks to this API. */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";
