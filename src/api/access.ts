import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { canonicalUuid } from "../contract/ingestion";
import { clientInfo } from "../lib/client-info";
import { ApiError } from "../lib/errors";
import { requireDb } from "../middleware/config";
import { recordAuthFailure } from "../services/auth-failures";
import { type Access, type RepoRole, roleGrants } from "../services/permissions";
import { rateLimited } from "../services/rate-limits";
import { authenticateToken } from "../services/tokens";

/**
 * The middleware that enforces a route's Access (src/services/permissions.ts),
 * in the spec's order: no or bad token 401; a malformed id 400; a repository
 * the caller has no role in 404, exactly like one that does not exist; a role
 * that does not grant the permission 403.
 */
export function accessMiddleware(access: Access): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (access === "public" || access === "signed") return next();
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
