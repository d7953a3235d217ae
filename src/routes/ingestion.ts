import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { readBodyCapped } from "../lib/body";
import { clientInfo } from "../lib/client-info";
import { ApiError } from "../lib/errors";
import { keyringFor } from "../lib/keyring";
import { requireDb } from "../middleware/config";
import type { ServiceContext } from "../services/context";
import { ingestUpload } from "../services/ingest-upload";
import { rateLimited } from "../services/rate-limits";
import { authenticateUpload } from "../services/upload-auth";

export const ingestionRoutes = new Hono<AppEnv>();

/**
 * POST /api/ingestion — CI uploads, in the spec's order: size cap →
 * signature → (rate limit) → parse → validate → repo match → store. Nothing
 * is parsed before the signature over the exact received bytes is checked.
 */
ingestionRoutes.post("/", async (c) => {
  const config = c.get("config");
  const ctx: ServiceContext = { db: requireDb(c), now: () => new Date(), requestId: c.get("requestId") };
  if (!config.HMAC_KEK) throw new ApiError("misconfigured", "Signature verification is not configured.");
  if (!/^application\/json[ \t]*(;|$)/i.test(c.req.header("content-type") ?? "")) {
    throw new ApiError("unsupported_media_type", "Content-Type must be application/json.");
  }
  const body = await readBodyCapped(c.req.raw, config.INGESTION_MAX_BODY_BYTES);
  const client = clientInfo(c.req.raw.headers);
  const auth = await authenticateUpload(ctx, {
    body,
    headers: c.req.raw.headers,
    keyring: await keyringFor(config.HMAC_KEK),
    client,
    failureLimiter: c.env.AUTH_FAILURE_LIMITER,
  });
  c.set("repoId", auth.repoId);
  const limited = await rateLimited(c.env.UPLOAD_LIMITER, `upload:${auth.repoId}`);
  if (limited) throw limited;
  return c.json(await ingestUpload(ctx, { auth, body, client }), 200);
});
