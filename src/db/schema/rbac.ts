import { sql } from "drizzle-orm";
import { check, index, jsonb, pgTable, text, unique, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, updatedAt } from "./columns";
import { repos, users } from "./core";
import { repoRole } from "./enums";

export const userRepoRoles = pgTable(
  "user_repo_roles",
  {
    id: id(),
    userId: uuid()
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    role: repoRole().notNull(),
    assignedBy: uuid().references(() => users.id, { onDelete: "set null" }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique("user_repo_roles_user_repo_unique").on(t.userId, t.repoId),
    index("user_repo_roles_repo_idx").on(t.repoId),
    index("user_repo_roles_role_idx").on(t.role),
  ],
);

/**
 * Append-only (a trigger rejects UPDATE and DELETE). The history must survive
 * the deletion of the people and repos it mentions, so references are SET NULL.
 */
export const roleAuditLogs = pgTable(
  "role_audit_logs",
  {
    id: id(),
    actorId: uuid().references(() => users.id, { onDelete: "set null" }),
    targetUserId: uuid().references(() => users.id, { onDelete: "set null" }),
    repoId: uuid().references(() => repos.id, { onDelete: "set null" }),
    action: text().notNull(),
    oldRole: repoRole(),
    newRole: repoRole(),
    metadata: jsonb(),
    createdAt: createdAt(),
  },
  (t) => [
    index("role_audit_logs_repo_created_idx").on(t.repoId, t.createdAt.desc().nullsFirst()),
    index("role_audit_logs_target_idx").on(t.targetUserId),
    index("role_audit_logs_actor_idx").on(t.actorId),
    check("role_audit_logs_action_valid", sql`${t.action} IN ('assigned', 'updated', 'removed')`),
  ],
);

export type UserRepoRole = typeof userRepoRoles.$inferSelect;
export type NewUserRepoRole = typeof userRepoRoles.$inferInsert;
export type RoleAuditLog = typeof roleAuditLogs.$inferSelect;
export type NewRoleAuditLog = typeof roleAuditLogs.$inferInsert;
