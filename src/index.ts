import { createApp } from "./app";
import type { Bindings } from "./env";
import { runScheduled } from "./jobs";
import { handleGithubQueue } from "./queues/github";
import type { GithubQueueMessage } from "./services/github/messages";

const app = createApp();

export default {
  fetch: app.fetch,
  // Awaited rather than handed to waitUntil, so a failed job shows as a failed invocation.
  async scheduled(controller, env) {
    await runScheduled(controller.cron, new Date(controller.scheduledTime), env);
  },
  // The GitHub App's workflow runs (and their dead letters); each message is acknowledged or retried itself.
  async queue(batch, env) {
    await handleGithubQueue(batch as MessageBatch<GithubQueueMessage>, env);
  },
} satisfies ExportedHandler<Bindings>;
