import { eq } from "drizzle-orm";
import { Hono } from "hono";
import type { AppEnv } from "../app-env";
import { repositoryConfigs } from "../db/schema";
import { normalizeResults } from "../ingestion/normalize";
import { issueDetails, payloadSchema } from "../ingestion/payload";
import { signedRequestFrom, type VerificationFailure, verifySignature } from "../ingestion/signature";
import { readBodyCapped } from "../lib/body";
import { sha256Hex } from "../lib/encoding";
import { ApiError } from "../lib/errors";
import { isUuid } from "../lib/ids";
import { DecryptError, keyringFor } from "../lib/keyring";
import { requireDb } from "../middleware/config";
import { auditQuery } from "../services/audit";
import type { ServiceContext } from "../services/context";
import { IngestionIncompleteError, storeIngestion } from "../services/ingestion";
import { activeSecretsQuery, decryptSigningSecrets } from "../services/secrets";

export const ingestionRoutes = new Hono<AppEnv>();

const PRINTABLE_KEY = /^[\x21-\x7e]{1,255}$/;

/** Every authentication failure looks the same from outside: no hint which part failed. */
const UNAUTHORIZED = () => new ApiError("unauthorized", "Missing or invalid signature.");

/**
 * POST /api/ingestion — CI uploads. The order is the spec's: size cap →
 * signature → parse → validate → repo match → store. Nothing is parsed
 * before the signature over the exact received bytes has been checked.
 */
ingestionRoutes.post("/", async (c) => {
  const config = c.get("config");
  const db = requireDb(c);
  if (!config.HMAC_KEK) throw new ApiError("misconfigured", "Signature verification is not configured.");
  const ctx: ServiceContext = { db, now: () => new Date(), requestId: c.get("requestId"), actorId: null };
  const now = ctx.now();

  const contentType = c.req.header("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(contentType)) {
    throw new ApiError("unsupported_media_type", "Content-Type must be application/json.");
  }
  const body = await readBodyCapped(c.req.raw, config.INGESTION_MAX_BODY_BYTES);

  // Signature. Unknown repos fail exactly like bad signatures, so the API does not reveal which repos exist.
  const claimedRepo = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? null;
  const signed = signedRequestFrom(c.req.raw.headers);
  const reject = async (reason: VerificationFailure | "missing_authorization" | "malformed_idempotency_key") => {
    await auditQuery(db, {
      action: "hmac_auth_failure",
      subject: "security",
      subjectId: claimedRepo && isUuid(claimedRepo) ? claimedRepo : null,
      description: "upload signature rejected",
      metadata: { reason, scheme: signed?.scheme ?? null },
      requestId: ctx.requestId,
      userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
      ipAddress: c.req.header("cf-connecting-ip") ?? null,
    });
    return UNAUTHORIZED();
  };
  if (!claimedRepo || !isUuid(claimedRepo) || !signed) throw await reject("missing_authorization");
  const repoId = claimedRepo.toLowerCase();
  if (signed.scheme === "v2" && signed.webhookId && !PRINTABLE_KEY.test(signed.webhookId)) {
    throw await reject("malformed_idempotency_key");
  }

  // One database request: the repository's secrets, and for v1 also whether it still accepts v1.
  const keyring = await keyringFor(config.HMAC_KEK);
  const [stored, policy] =
    signed.scheme === "v1"
      ? await db.batch([
          activeSecretsQuery(ctx, repoId),
          db
            .select({ requireTimestamped: repositoryConfigs.requireTimestampedSignature })
            .from(repositoryConfigs)
            .where(eq(repositoryConfigs.repoId, repoId)),
        ])
      : [await activeSecretsQuery(ctx, repoId), []];
  const secrets = await decryptSigningSecrets(keyring, repoId, stored).catch((error: unknown) => {
    // A stored secret that no configured key can open is our misconfiguration, not the client's bad signature.
    if (error instanceof DecryptError) throw new ApiError("misconfigured", "Signature verification is misconfigured.");
    throw error;
  });
  const requireTimestamped = policy[0]?.requireTimestamped ?? false;
  const verification = await verifySignature(body, signed, secrets, now, { allowV1: !requireTimestamped });
  if (!verification.ok) throw await reject(verification.reason);

  // Parse and validate: only now is the body trusted enough to look at.
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body);
  } catch {
    throw new ApiError("bad_request", "The body is not valid UTF-8.");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ApiError("bad_request", `The body is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) {
    throw new ApiError("validation_failed", "The payload is invalid.", issueDetails(parsed.error));
  }
  const payload = parsed.data;
  const normalized = normalizeResults(payload, now);
  if (!normalized.ok) throw new ApiError("validation_failed", "The payload is invalid.", normalized.details);

  if (payload.repo_id.toLowerCase() !== repoId) {
    throw new ApiError("forbidden", "repo_id does not match the repository the request is signed for.");
  }

  const environment = payload.environment ?? null;
  const outcome = await storeIngestion(ctx, {
    repoId,
    idempotencyKey:
      signed.scheme === "v2"
        ? (signed.webhookId as string)
        : (payload.idempotency_key ??
          `auto:${payload.commit_sha.toLowerCase()}:${payload.run_id}:${payload.framework}`),
    commitSha: payload.commit_sha.toLowerCase(),
    runId: payload.run_id,
    framework: payload.framework,
    branch: payload.branch ?? null,
    pullRequest: payload.pull_request ?? null,
    environment,
    environmentHash: environment ? await sha256Hex(canonicalJson(environment)) : null,
    metadata: payload.metadata ?? null,
    scheme: signed.scheme,
    secretId: verification.secret.id,
    keyId: verification.secret.keyId,
    payloadSha256: await sha256Hex(body),
    results: normalized.results,
    userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
    ipAddress: c.req.header("cf-connecting-ip") ?? null,
  }).catch((error: unknown) => {
    if (error instanceof IngestionIncompleteError) {
      throw new ApiError("service_unavailable", "The same upload is being stored by another request; retry shortly.");
    }
    throw error;
  });
  if (outcome.kind === "conflict") {
    throw new ApiError("conflict", "This idempotency key was already used for a different payload.");
  }
  return c.json(outcome.response, 200);
});

/** Key order must not change the hash of the same environment. */
function canonicalJson(value: Record<string, string>): string {
  return JSON.stringify(
    Object.keys(value)
      .sort()
      .map((key) => [key, value[key]]),
  );
}
