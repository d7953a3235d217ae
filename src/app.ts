import { Hono } from "hono";
import type { AppEnv } from "./app-env";
import { notFound, onError } from "./lib/error-handler";
import { accessLog } from "./middleware/access-log";
import { configAndDb } from "./middleware/config";
import { requestId } from "./middleware/request-id";
import { healthRoutes } from "./routes/health";
import { ingestionRoutes } from "./routes/ingestion";

/** Builds the Worker's HTTP app; tests build the same one. */
export function createApp() {
  const app = new Hono<AppEnv>();
  app.use("*", requestId, accessLog, configAndDb);
  app.onError(onError);
  app.notFound(notFound);

  app.route("/api/health", healthRoutes);
  app.route("/api/ingestion", ingestionRoutes);
  return app;
}
