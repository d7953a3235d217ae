import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { canonicalUuid, HEADERS } from "../contract/ingestion";
import { clientInfo } from "../lib/client-info";
import { ApiError } from "../lib/errors";
import { keyringFor } from "../lib/keyring";
import { requireDb } from "../middleware/config";
import { recordAuthFailure } from "../services/auth-failures";
import { type Access, type RepoRole, roleGrants } from "../services/permissions";
import { rateLimited } from "../services/rate-limits";
import { authenticateToken } from "../services/tokens";
import { authenticateUpload } from "../services/upload-auth";

/**
 * The middleware that enforces a route's Access (src/services/permissions.ts),
 * in the spec's order: no or bad token 401; a malformed id 400; a repository
 * the caller has no role in 404, exactly like one that does not exist; a role
 * that does not grant the permission 403.
 *
 * With `signedReads`, a repository route also takes the repository's own
 * signature instead of a token (spec/api.md, "Who is calling"): what CI holds.
 */
export function accessMiddleware(access: Access, options: { signedReads?: boolean } = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (access === "public" || access === "signed") return next();
    const permission = access === "user" || access === "platform_admin" ? null : access;
    if (options.signedReads && permission && presentsSignature(c)) {
      await authenticateSignedRead(c);
      if (!roleGrants("read_only", permission)) {
        throw new ApiError("forbidden", "A repository signature only allows reading.");
      }
      c.set("role", "read_only");
      return next();
    }
    const onRepository = access !== "user" && access !== "platform_admin";
    const rawRepoId = onRepository ? (c.req.param("repoId") ?? "") : "";
    const repoId = onRepository ? canonicalUuid(rawRepoId) : null;
    // One database request: the token, its person and their role on the path's repository.
    const role = await authenticateCaller(c, repoId);
    if (access === "platform_admin" && !c.get("caller")?.isPlatformAdmin) {
      throw new ApiError("forbidden", "Only platform admins may do this.");
    }
    if (onRepository) {
      if (!repoId) {
        throw new ApiError("validation_failed", "The request is invalid.", [
          { path: "repoId", message: "must be a uuid" },
        ]);
      }
      if (!role) throw repositoryNotFound();
      if (!roleGrants(role, access)) throw new ApiError("forbidden", `Your role (${role}) does not allow this.`);
      c.set("role", role);
    }
    return next();
  };
}

export const repositoryNotFound = () => new ApiError("not_found", "Repository not found.");

const BEARER = /^Bearer[ \t]+([^ \t]+)$/i;

/**
 * A signed read carries `webhook-signature` and no personal token (its Authorization, if any, names the
 * repository). Anything else is taken as a token request, so a bad one is the token's 401.
 */
function presentsSignature(c: Context<AppEnv>): boolean {
  if (c.req.header(HEADERS.webhookSignature) === undefined) return false;
  const bearer = BEARER.exec(c.req.header(HEADERS.authorization) ?? "")?.[1];
  return bearer === undefined || canonicalUuid(bearer) !== null;
}

/**
 * A Standard Webhooks (v2) signature over the empty body with one of the path repository's secrets, checked by
 * the uploads' own code (same ±300 s window, same 401, same failure counting and audit). Grants read_only.
 */
async function authenticateSignedRead(c: Context<AppEnv>): Promise<void> {
  const config = c.get("config");
  if (!config.HMAC_KEK) throw new ApiError("misconfigured", "Signature verification is not configured.");
  const ctx = { db: requireDb(c), now: () => new Date(), requestId: c.get("requestId") };
  const auth = await authenticateUpload(ctx, {
    body: new Uint8Array(),
    headers: c.req.raw.headers,
    keyring: await keyringFor(config.HMAC_KEK),
    client: clientInfo(c.req.raw.headers),
    failureLimiter: c.env.AUTH_FAILURE_LIMITER,
    pathRepoId: c.req.param("repoId") ?? "",
    v2Only: true,
    description: "signed read rejected",
  });
  c.set("repoId", auth.repoId);
  const limited = await rateLimited(c.env.API_LIMITER, `signed:${auth.repoId}`);
  if (limited) throw limited;
}

/** Sets the caller (or throws 401/429); returns their role on `repoId` when one is asked for. */
async function authenticateCaller(c: Context<AppEnv>, repoId: string | null): Promise<RepoRole | null> {
  const ctx = { db: requireDb(c), now: () => new Date(), requestId: c.get("requestId") };
  const token = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
  const result = token
    ? await authenticateToken(ctx, token, repoId)
    : ({ ok: false, reason: "missing_token" } as const);
  if (!result.ok) {
    const limited = await recordAuthFailure(
      ctx,
      {
        action: "login_failure",
        subject: "session",
        subjectId: null,
        reason: result.reason,
        description: "API token rejected",
        client: clientInfo(c.req.raw.headers),
      },
      c.env.AUTH_FAILURE_LIMITER,
    );
    throw limited ?? new ApiError("unauthorized", "A valid personal token is required.");
  }
  c.set("caller", result.caller);
  const limited = await rateLimited(c.env.API_LIMITER, `api:${result.caller.userId}`);
  if (limited) throw limited;
  return result.role;
}
