import { sql } from "drizzle-orm";
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
    await authenticateCaller(c);
    if (access === "platform_admin" && !c.get("caller")?.isPlatformAdmin) {
      throw new ApiError("forbidden", "Only platform admins may do this.");
    }
    if (access !== "user" && access !== "platform_admin") {
      const role = await roleOnRepository(c);
      if (!role) throw repositoryNotFound();
      if (!roleGrants(role, access)) throw new ApiError("forbidden", `Your role (${role}) does not allow this.`);
      c.set("role", role);
    }
    return next();
  };
}

export const repositoryNotFound = () => new ApiError("not_found", "Repository not found.");

const BEARER = /^Bearer[ \t]+([^ \t]+)$/i;

async function authenticateCaller(c: Context<AppEnv>): Promise<void> {
  const ctx = { db: requireDb(c), now: () => new Date(), requestId: c.get("requestId") };
  const token = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
  const result = token ? await authenticateToken(ctx, token) : ({ ok: false, reason: "missing_token" } as const);
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
}

/** The caller's role on the path's repository; a malformed id is 400 before anything is looked up. */
async function roleOnRepository(c: Context<AppEnv>): Promise<RepoRole | null> {
  const raw = c.req.param("repoId") ?? "";
  const repoId = canonicalUuid(raw);
  if (!repoId) {
    throw new ApiError("validation_failed", "The request is invalid.", [{ path: "repoId", message: "must be a uuid" }]);
  }
  const caller = c.get("caller");
  const result = await requireDb(c).execute<{ role: RepoRole }>(
    sql`select role from user_repo_roles where user_id = ${caller?.userId} and repo_id = ${repoId}`,
  );
  return result.rows[0]?.role ?? null;
}
