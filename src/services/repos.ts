import { and, asc, eq, sql } from "drizzle-orm";
import { repos, roleAuditLogs, userRepoRoles } from "../db/schema";
import { findSqlState } from "../lib/db-errors";
import { auditQuery } from "./audit";
import type { ServiceContext } from "./context";
import { cursorTime } from "./keyset";
import type { RepoRole } from "./permissions";

export interface RepoView {
  id: string;
  owner: string;
  name: string;
  defaultBranch: string;
  visibility: "public" | "private";
  createdAt: Date;
  updatedAt: Date;
}

export interface RepoWithRole extends RepoView {
  role: RepoRole;
}

export interface RepoPageRow extends RepoWithRole {
  cursorAt: string;
}

const repoColumns = {
  id: repos.id,
  owner: repos.owner,
  name: repos.name,
  defaultBranch: repos.defaultBranch,
  visibility: repos.visibility,
  createdAt: repos.createdAt,
  updatedAt: repos.updatedAt,
};

export class RepoExistsError extends Error {
  override name = "RepoExistsError";
}

/** The repositories a user has a role in, by (created_at, id); `after` is the last key of the previous page. */
export function reposOfUser(
  ctx: ServiceContext,
  userId: string,
  page: { limit: number; after: [string, string] | null },
): Promise<RepoPageRow[]> {
  const after = page.after;
  return ctx.db
    .select({ ...repoColumns, role: userRepoRoles.role, cursorAt: sql<string>`${cursorTime(sql`${repos.createdAt}`)}` })
    .from(userRepoRoles)
    .innerJoin(repos, eq(repos.id, userRepoRoles.repoId))
    .where(
      and(
        eq(userRepoRoles.userId, userId),
        after ? sql`(${repos.createdAt}, ${repos.id}) > (${after[0]}::timestamptz, ${after[1]}::uuid)` : undefined,
      ),
    )
    .orderBy(asc(repos.createdAt), asc(repos.id))
    .limit(page.limit);
}

/** Creates a repository; its creator becomes its admin. One database request, audited. */
export async function createRepo(
  ctx: ServiceContext,
  creatorId: string,
  input: { owner: string; name: string; defaultBranch?: string; visibility?: "public" | "private" },
): Promise<RepoWithRole> {
  const id = crypto.randomUUID();
  const now = ctx.now();
  try {
    const [[repo]] = await ctx.db.batch([
      ctx.db
        .insert(repos)
        .values({
          id,
          owner: input.owner,
          name: input.name,
          defaultBranch: input.defaultBranch ?? "main",
          visibility: input.visibility ?? "private",
          createdAt: now,
          updatedAt: now,
        })
        .returning(repoColumns),
      ctx.db.insert(userRepoRoles).values({ userId: creatorId, repoId: id, role: "admin", assignedBy: creatorId }),
      ctx.db.insert(roleAuditLogs).values({
        actorId: creatorId,
        targetUserId: creatorId,
        repoId: id,
        action: "assigned",
        newRole: "admin",
        metadata: { reason: "repository created" },
        createdAt: now,
      }),
      auditQuery(ctx.db, {
        actorId: creatorId,
        action: "role_assigned",
        subject: "repo",
        subjectId: id,
        description: "repository created; its creator is its admin",
        metadata: { targetUserId: creatorId, role: "admin" },
        requestId: ctx.requestId ?? null,
        createdAt: now,
      }),
    ]);
    return { ...repo, role: "admin" };
  } catch (error) {
    if (findSqlState(error) === "23505") throw new RepoExistsError(`${input.owner}/${input.name} exists`);
    throw error;
  }
}

export async function getRepo(ctx: ServiceContext, repoId: string): Promise<RepoView | null> {
  const [repo] = await ctx.db.select(repoColumns).from(repos).where(eq(repos.id, repoId));
  return repo ?? null;
}

export async function updateRepo(
  ctx: ServiceContext,
  actorId: string,
  repoId: string,
  changes: { defaultBranch?: string; visibility?: "public" | "private" },
): Promise<RepoView | null> {
  const [[repo]] = await ctx.db.batch([
    ctx.db
      .update(repos)
      .set({ ...changes, updatedAt: ctx.now() })
      .where(eq(repos.id, repoId))
      .returning(repoColumns),
    auditQuery(ctx.db, {
      actorId,
      action: "config_updated",
      subject: "repo",
      subjectId: repoId,
      description: "repository updated",
      metadata: { changed: Object.keys(changes).sort() },
      requestId: ctx.requestId ?? null,
      createdAt: ctx.now(),
    }),
  ]);
  return repo ?? null;
}

/** Deletes a repository and, by cascade, everything stored for it. Audited (the audit row outlives it). */
export async function deleteRepo(ctx: ServiceContext, actorId: string, repoId: string): Promise<boolean> {
  const [deleted] = await ctx.db.batch([
    ctx.db.delete(repos).where(eq(repos.id, repoId)).returning({ id: repos.id }),
    auditQuery(ctx.db, {
      actorId,
      action: "other",
      subject: "repo",
      subjectId: repoId,
      description: "repository deleted",
      metadata: { event: "repo_deleted" },
      requestId: ctx.requestId ?? null,
      createdAt: ctx.now(),
    }),
  ]);
  return deleted.length > 0;
}
