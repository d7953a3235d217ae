import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { readBodyCapped } from "../lib/body";
import { clientInfo } from "../lib/client-info";
import { ApiError } from "../lib/errors";
import { requireDb } from "../middleware/config";
import type { ServiceContext } from "../services/context";
import { authenticateGithubWebhook } from "../services/github/webhook-auth";
import { handleDelivery } from "../services/github/webhook-events";
import { deliveryHeaders, GITHUB_WEBHOOK_MAX_BODY_BYTES } from "../services/github/webhook-payloads";

export const githubWebhookRoutes = new Hono<AppEnv>();

/**
 * POST /api/webhooks/github — the GitHub App's deliveries, in ingestion's order: size cap → signature over
 * the exact bytes → headers → parse → rate limit → once per delivery id → dispatch (README, GitHub App).
 */
githubWebhookRoutes.post("/", async (c) => {
  const config = c.get("config");
  const ctx: ServiceContext = { db: requireDb(c), now: () => new Date(), requestId: c.get("requestId") };
  const secret = config.GITHUB_WEBHOOK_SECRET;
  if (!secret) throw new ApiError("misconfigured", "GitHub webhook verification is not configured.");
  if (!/^application\/json[ \t]*(;|$)/i.test(c.req.header("content-type") ?? "")) {
    throw new ApiError("unsupported_media_type", "Content-Type must be application/json.");
  }
  const body = await readBodyCapped(c.req.raw, GITHUB_WEBHOOK_MAX_BODY_BYTES);
  const headers = c.req.raw.headers;
  await authenticateGithubWebhook(ctx, {
    secret,
    body,
    headers,
    client: clientInfo(headers),
    failureLimiter: c.env.AUTH_FAILURE_LIMITER,
  });
  const answer = await handleDelivery(ctx, {
    headers: deliveryHeaders(headers),
    body,
    queue: c.env.GITHUB_QUEUE,
    limiter: c.env.UPLOAD_LIMITER,
  });
  return c.json(answer.body, answer.status);
});
