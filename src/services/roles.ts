import { sql } from "drizzle-orm";
import type { ServiceContext } from "./context";
import { cursorTime } from "./keyset";
import type { RepoRole } from "./permissions";

/**
 * Roles on a repository and their history. Each change is one SQL statement:
 * it locks the repository's admin rows (so two concurrent demotions cannot
 * both pass the last-admin check), applies the change only if it keeps an
 * admin, and writes role_audit_logs and audit_logs from the change itself —
 * one database request, nothing written when it is refused.
 */

export type RoleView = {
  userId: string;
  login: string | null;
  name: string | null;
  role: RepoRole;
  assignedBy: string | null;
  updatedAt: Date;
};

export type RoleChange =
  | { kind: "changed"; oldRole: RepoRole | null; newRole: RepoRole | null }
  | { kind: "unchanged" }
  | { kind: "last_admin" }
  | { kind: "no_such_user" }
  | { kind: "no_such_role" };

export async function listRoles(
  ctx: ServiceContext,
  repoId: string,
  page: { limit: number; after: string | null },
): Promise<RoleView[]> {
  const result = await ctx.db.execute<Omit<RoleView, "updatedAt"> & { updatedAt: string }>(sql`
    select r.user_id as "userId", u.github_login as login, u.name, r.role, r.assigned_by as "assignedBy",
      r.updated_at as "updatedAt"
    from user_repo_roles r join users u on u.id = r.user_id
    where r.repo_id = ${repoId} ${page.after ? sql`and r.user_id > ${page.after}` : sql``}
    order by r.user_id limit ${page.limit}`);
  return result.rows.map((row) => ({ ...row, updatedAt: new Date(row.updatedAt) }));
}

/** Gives `userId` the role `role` on the repository (or changes it). */
export async function setRole(
  ctx: ServiceContext,
  input: { actorId: string; repoId: string; userId: string; role: RepoRole },
): Promise<RoleChange> {
  const now = ctx.now().toISOString();
  const result = await ctx.db.execute<{ outcome: string; old_role: RepoRole | null }>(sql`
    with admins as (
      select user_id from user_repo_roles where repo_id = ${input.repoId} and role = 'admin' for update
    ), target_user as (
      select id from users where id = ${input.userId} and deleted_at is null
    ), current as (
      select role from user_repo_roles where repo_id = ${input.repoId} and user_id = ${input.userId}
    ), decision as (
      select case
        when not exists (select 1 from target_user) then 'no_such_user'
        when (select role from current) = ${input.role}::repo_role then 'unchanged'
        when (select role from current) = 'admin' and ${input.role} <> 'admin'
          and (select count(*) from admins) <= 1 then 'last_admin'
        else 'changed' end as outcome
    ), changed as (
      insert into user_repo_roles (user_id, repo_id, role, assigned_by, updated_at)
      select ${input.userId}, ${input.repoId}, ${input.role}::repo_role, ${input.actorId}, ${now}
      from decision where outcome = 'changed'
      on conflict (user_id, repo_id) do update
        set role = excluded.role, assigned_by = excluded.assigned_by, updated_at = excluded.updated_at
      returning user_id
    ), history as (
      insert into role_audit_logs (actor_id, target_user_id, repo_id, action, old_role, new_role, created_at)
      select ${input.actorId}, ${input.userId}, ${input.repoId},
        case when (select role from current) is null then 'assigned' else 'updated' end,
        (select role from current), ${input.role}::repo_role, ${now}
      from changed
    ), audit as (
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, request_id, created_at)
      select ${input.actorId}, 'role_assigned', 'repo', ${input.repoId}, 'role assigned',
        jsonb_build_object('targetUserId', ${input.userId}::text, 'oldRole', (select role from current),
          'newRole', ${input.role}::text),
        ${ctx.requestId ?? null}, ${now}
      from changed
    )
    select (select outcome from decision) as outcome, (select role from current) as old_role`);
  const row = result.rows[0];
  if (row.outcome === "changed") return { kind: "changed", oldRole: row.old_role, newRole: input.role };
  return { kind: row.outcome as "unchanged" | "last_admin" | "no_such_user" };
}

/** Takes the user's role on the repository away (never the last admin's). */
export async function removeRole(
  ctx: ServiceContext,
  input: { actorId: string; repoId: string; userId: string },
): Promise<RoleChange> {
  const now = ctx.now().toISOString();
  const result = await ctx.db.execute<{ outcome: string; old_role: RepoRole | null }>(sql`
    with admins as (
      select user_id from user_repo_roles where repo_id = ${input.repoId} and role = 'admin' for update
    ), current as (
      select role from user_repo_roles where repo_id = ${input.repoId} and user_id = ${input.userId}
    ), decision as (
      select case
        when not exists (select 1 from current) then 'no_such_role'
        when (select role from current) = 'admin' and (select count(*) from admins) <= 1 then 'last_admin'
        else 'changed' end as outcome
    ), removed as (
      delete from user_repo_roles
      where repo_id = ${input.repoId} and user_id = ${input.userId}
        and exists (select 1 from decision where outcome = 'changed')
      returning role
    ), history as (
      insert into role_audit_logs (actor_id, target_user_id, repo_id, action, old_role, created_at)
      select ${input.actorId}, ${input.userId}, ${input.repoId}, 'removed', role, ${now} from removed
    ), audit as (
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, request_id, created_at)
      select ${input.actorId}, 'role_removed', 'repo', ${input.repoId}, 'role removed',
        jsonb_build_object('targetUserId', ${input.userId}::text, 'oldRole', role), ${ctx.requestId ?? null}, ${now}
      from removed
    )
    select (select outcome from decision) as outcome, (select role from current) as old_role`);
  const row = result.rows[0];
  if (row.outcome === "changed") return { kind: "changed", oldRole: row.old_role, newRole: null };
  return { kind: row.outcome as "last_admin" | "no_such_role" };
}

export type RoleHistoryView = {
  id: string;
  actorId: string | null;
  targetUserId: string | null;
  action: string;
  oldRole: RepoRole | null;
  newRole: RepoRole | null;
  createdAt: Date;
};

/** The repository's role history, newest first, keyed by (created_at, id). */
export async function roleHistory(
  ctx: ServiceContext,
  repoId: string,
  page: { limit: number; after: [string, string] | null },
): Promise<(RoleHistoryView & { cursorAt: string })[]> {
  const after = page.after;
  const result = await ctx.db.execute<Omit<RoleHistoryView, "createdAt"> & { createdAt: string; cursorAt: string }>(sql`
    select id, actor_id as "actorId", target_user_id as "targetUserId", action, old_role as "oldRole",
      new_role as "newRole", created_at as "createdAt", ${cursorTime(sql`created_at`)} as "cursorAt"
    from role_audit_logs
    where repo_id = ${repoId}
      ${after ? sql`and (created_at, id) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``}
    order by created_at desc, id desc limit ${page.limit}`);
  return result.rows.map((row) => ({ ...row, createdAt: new Date(row.createdAt) }));
}
