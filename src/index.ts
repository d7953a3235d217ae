import { createApp } from "./app";
import type { Bindings } from "./env";
import { runScheduled } from "./jobs";

const app = createApp();

export default {
  fetch: app.fetch,
  // Awaited rather than handed to waitUntil, so a failed job shows as a failed invocation.
  async scheduled(controller, env) {
    await runScheduled(controller.cron, new Date(controller.scheduledTime), env);
  },
} satisfies ExportedHandler<Bindings>;
