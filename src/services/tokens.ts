import { and, eq, isNull, lt, or, sql } from "drizzle-orm";
import { sessions, users } from "../db/schema";
import { bytesToBase64, randomBytes, sha256Hex } from "../lib/encoding";
import { auditQuery } from "./audit";
import type { ServiceContext } from "./context";
import type { RepoRole } from "./permissions";

/**
 * Personal tokens (spec/api.md, "Who is calling"): `ap_` and 32 random bytes
 * in base64url. The sessions table holds only the token's SHA-256; the token
 * itself exists once, in the answer that creates it.
 */
export const TOKEN_PREFIX = "ap_";
export const DEFAULT_TOKEN_DAYS = 30;
export const MAX_TOKEN_DAYS = 365;
/** last_used_at is written at most this often per session, not on every request. */
export const LAST_USED_RESOLUTION_MS = 60_000;

const TOKEN_SHAPE = /^ap_[A-Za-z0-9_-]{43}$/;

export interface Caller {
  userId: string;
  sessionId: string;
  isPlatformAdmin: boolean;
  expires: Date;
}

function newToken(): string {
  return TOKEN_PREFIX + bytesToBase64(randomBytes(32)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export const tokenHash = (token: string) => sha256Hex(token);

/** A new session for the user; returns the token (shown once) and when it expires. Audited in the same request. */
export async function createToken(
  ctx: ServiceContext,
  input: { userId: string; days?: number; label?: string },
): Promise<{ token: string; sessionId: string; expires: Date }> {
  const days = input.days ?? DEFAULT_TOKEN_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS) {
    throw new RangeError(`days must be an integer from 1 to ${MAX_TOKEN_DAYS}`);
  }
  const token = newToken();
  const sessionId = crypto.randomUUID();
  const expires = new Date(ctx.now().getTime() + days * 86_400_000);
  await ctx.db.batch([
    ctx.db.insert(sessions).values({
      id: sessionId,
      userId: input.userId,
      sessionToken: await tokenHash(token),
      expires,
      createdAt: ctx.now(),
    }),
    auditQuery(ctx.db, {
      actorId: input.userId,
      action: "token_created",
      subject: "token",
      subjectId: sessionId,
      description: "personal token created",
      metadata: { days, ...(input.label ? { label: input.label } : {}) },
      requestId: ctx.requestId ?? null,
      createdAt: ctx.now(),
    }),
  ]);
  return { token, sessionId, expires };
}

export type TokenFailure = "malformed_token" | "unknown_token" | "expired_token" | "deleted_user";

/**
 * The caller a bearer token belongs to, or why not. One SELECT; when the
 * session's last use is older than the resolution, one UPDATE more.
 */
export async function authenticateToken(
  ctx: ServiceContext,
  token: string,
  /** Also look up the caller's role on this repository, in the same query. */
  repoId?: string | null,
): Promise<{ ok: true; caller: Caller; role: RepoRole | null } | { ok: false; reason: TokenFailure }> {
  if (!TOKEN_SHAPE.test(token)) return { ok: false, reason: "malformed_token" };
  const [row] = await ctx.db
    .select({
      sessionId: sessions.id,
      userId: sessions.userId,
      expires: sessions.expires,
      lastUsedAt: sessions.lastUsedAt,
      deletedAt: users.deletedAt,
      isPlatformAdmin: users.isPlatformAdmin,
      role: repoId
        ? sql<RepoRole | null>`(select ur.role from user_repo_roles ur
            where ur.user_id = ${sessions.userId} and ur.repo_id = ${repoId})`
        : sql<null>`null`,
    })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(sessions.sessionToken, await tokenHash(token)))
    .limit(1);
  if (!row) return { ok: false, reason: "unknown_token" };
  const now = ctx.now();
  if (row.expires <= now) return { ok: false, reason: "expired_token" };
  if (row.deletedAt) return { ok: false, reason: "deleted_user" };
  const stale = new Date(now.getTime() - LAST_USED_RESOLUTION_MS);
  if (!row.lastUsedAt || row.lastUsedAt < stale) {
    await ctx.db
      .update(sessions)
      .set({ lastUsedAt: now })
      .where(and(eq(sessions.id, row.sessionId), or(isNull(sessions.lastUsedAt), lt(sessions.lastUsedAt, stale))));
  }
  return {
    ok: true,
    caller: {
      userId: row.userId,
      sessionId: row.sessionId,
      isPlatformAdmin: row.isPlatformAdmin,
      expires: row.expires,
    },
    role: row.role,
  };
}

/** Log-out: the session is deleted, so its token is 401 from now on. Audited in the same request. */
export async function revokeSession(ctx: ServiceContext, caller: Caller): Promise<void> {
  await ctx.db.batch([
    ctx.db.delete(sessions).where(eq(sessions.id, caller.sessionId)),
    auditQuery(ctx.db, {
      actorId: caller.userId,
      action: "token_revoked",
      subject: "session",
      subjectId: caller.sessionId,
      description: "personal token revoked (log-out)",
      requestId: ctx.requestId ?? null,
      createdAt: ctx.now(),
    }),
  ]);
}

/** Sessions that expired before `cutoff` (for the upkeep job). */
export async function deleteExpiredSessions(ctx: ServiceContext, cutoff: Date): Promise<number> {
  const gone = await ctx.db.delete(sessions).where(lt(sessions.expires, cutoff)).returning({ id: sessions.id });
  return gone.length;
}
