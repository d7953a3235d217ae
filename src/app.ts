import { Hono } from "hono";
import { apiReference, createApi } from "./api";
import type { AppEnv } from "./app-env";
import { notFound, onError } from "./lib/error-handler";
import { accessLog } from "./middleware/access-log";
import { configAndDb } from "./middleware/config";
import { requestId } from "./middleware/request-id";
import { DOCS_CSP, securityHeaders } from "./middleware/security-headers";
import { githubWebhookRoutes } from "./routes/github-webhook";
import { healthRoutes } from "./routes/health";
import { ingestionRoutes } from "./routes/ingestion";
import { metricsRoutes } from "./routes/metrics";
import { versionRoutes } from "./routes/version";
import { installDatabaseRequestCounter } from "./services/metrics";

/** Builds the Worker's HTTP app; tests build the same one. */
export function createApp() {
  installDatabaseRequestCounter();
  const app = new Hono<AppEnv>();
  app.use("*", requestId, accessLog, securityHeaders, configAndDb);
  app.onError(onError);
  app.notFound(notFound);

  app.route("/api/health", healthRoutes);
  app.route("/api/version", versionRoutes);
  app.route("/api/metrics", metricsRoutes);
  app.route("/api/ingestion", ingestionRoutes);
  app.route("/api/webhooks/github", githubWebhookRoutes);
  app.route("/api", createApi());
  app.get("/docs", async (c, next) => {
    await next();
    c.res.headers.set("Content-Security-Policy", DOCS_CSP);
    c.res.headers.set("Cache-Control", "public, max-age=300");
  });
  app.get("/docs", apiReference("/scalar/standalone.js"));
  return app;
}
