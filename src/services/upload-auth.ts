import { eq } from "drizzle-orm";
import { canonicalUuid, HEADERS, type SignatureScheme, WEBHOOK_ID_PATTERN } from "../contract/ingestion";
import { repositoryConfigs } from "../db/schema";
import {
  type SignedRequest,
  signedRequestFrom,
  type VerificationFailure,
  verifySignature,
} from "../ingestion/signature";
import type { ClientInfo } from "../lib/client-info";
import { ApiError } from "../lib/errors";
import { DecryptError, type Keyring } from "../lib/keyring";
import { recordAuthFailure } from "./auth-failures";
import type { ServiceContext } from "./context";
import type { RateLimiter } from "./rate-limits";
import { activeSecretsQuery, decryptSigningSecrets, type SigningSecret } from "./secrets";

/**
 * Who sent an upload: the repository named by `Authorization: Bearer <repo
 * id>`, proven by a signature with one of its secrets (spec/ingestion.md,
 * "Authentication"). Used by every route that takes signed CI requests: the
 * uploads, and the signed reads (the quarantine list), which sign an empty body
 * and name the repository in their path.
 */

export interface AuthenticatedUpload {
  /** Canonical (lower-case) repository id. */
  repoId: string;
  scheme: SignatureScheme;
  secret: SigningSecret;
  /** v2 only: the webhook-id, which is also the idempotency key. */
  webhookId?: string;
}

export interface AuthenticateUploadInput {
  body: Uint8Array;
  headers: Headers;
  keyring: Keyring;
  client: ClientInfo;
  /** Counts failed authentications per client address; absent means unlimited. */
  failureLimiter?: RateLimiter;
  /**
   * Signed reads: the repository their path names. `Authorization` may then be left out; when given it must
   * name the same repository.
   */
  pathRepoId?: string;
  /**
   * Standard Webhooks (v2) only. Signed reads take nothing else: a v1 signature of an empty body never
   * changes, so anyone who saw one could replay it forever; v2 signs a fresh id and timestamp.
   */
  v2Only?: boolean;
  /** What was refused, for the audit row of a failure. */
  description?: string;
}

export type AuthFailureReason = VerificationFailure | "missing_authorization" | "malformed_idempotency_key";

/** Every authentication failure looks the same from outside: no hint which part failed. */
const unauthorized = () => new ApiError("unauthorized", "Missing or invalid signature.");

const BEARER = /^Bearer[ \t]+([^ \t]+)$/i;

export async function authenticateUpload(
  ctx: ServiceContext,
  input: AuthenticateUploadInput,
): Promise<AuthenticatedUpload> {
  const repoId = claimedRepository(input);
  const signed = signedRequestFrom(input.headers);
  const fail = (reason: AuthFailureReason) => rejectUpload(ctx, input, { repoId, reason, scheme: signed?.scheme });

  if (!repoId || !signed) throw await fail("missing_authorization");
  if (input.v2Only && signed.scheme !== "v2") throw await fail("scheme_not_allowed");
  if (signed.scheme === "v2" && signed.webhookId !== undefined && !WEBHOOK_ID_PATTERN.test(signed.webhookId)) {
    throw await fail("malformed_idempotency_key");
  }

  // One database request: the repository's secrets, and for v1 also whether it still accepts v1.
  const [stored, policy] =
    signed.scheme === "v1"
      ? await ctx.db.batch([
          activeSecretsQuery(ctx, repoId),
          ctx.db
            .select({ requireTimestamped: repositoryConfigs.requireTimestampedSignature })
            .from(repositoryConfigs)
            .where(eq(repositoryConfigs.repoId, repoId)),
        ])
      : [await activeSecretsQuery(ctx, repoId), []];
  const secrets = await decryptSigningSecrets(input.keyring, repoId, stored).catch((error: unknown) => {
    // A stored secret that no configured key can open is our misconfiguration, not the client's bad signature.
    if (error instanceof DecryptError) throw new ApiError("misconfigured", "Signature verification is misconfigured.");
    throw error;
  });
  const allowV1 = !(policy[0]?.requireTimestamped ?? false);
  const verification = await verifySignature(input.body, signed, secrets, ctx.now(), { allowV1 });
  if (!verification.ok) throw await fail(verification.reason);
  return { repoId, scheme: signed.scheme, secret: verification.secret, webhookId: webhookIdOf(signed) };
}

/** The repository a request is for: its Authorization, or (signed reads) its path, which Authorization must match. */
function claimedRepository(input: AuthenticateUploadInput): string | null {
  const claimed = BEARER.exec(input.headers.get(HEADERS.authorization) ?? "")?.[1] ?? null;
  const claimedId = claimed === null ? null : canonicalUuid(claimed);
  if (input.pathRepoId === undefined) return claimedId;
  const pathId = canonicalUuid(input.pathRepoId);
  return claimed === null || claimedId === pathId ? pathId : null;
}

function webhookIdOf(signed: SignedRequest): string | undefined {
  return signed.scheme === "v2" ? signed.webhookId : undefined;
}

/** Records the failure (counted, audited once a minute, rate-limited) and returns the error to answer with. */
async function rejectUpload(
  ctx: ServiceContext,
  input: AuthenticateUploadInput,
  failure: { repoId: string | null; reason: AuthFailureReason; scheme?: SignatureScheme },
): Promise<ApiError> {
  const limited = await recordAuthFailure(
    ctx,
    {
      action: "hmac_auth_failure",
      subject: "security",
      subjectId: failure.repoId,
      reason: failure.reason,
      description: input.description ?? "upload signature rejected",
      metadata: { scheme: failure.scheme ?? null },
      client: input.client,
    },
    input.failureLimiter,
  );
  return limited ?? unauthorized();
}
