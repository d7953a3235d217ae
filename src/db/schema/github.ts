import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz, updatedAt } from "./columns";

/** GitHub App installations; repos link to them through repos.gh_id ∈ repository_ids. */
export const githubAppInstallations = pgTable(
  "github_app_installations",
  {
    id: id(),
    installationId: bigint({ mode: "bigint" }).notNull().unique("github_app_installations_installation_unique"),
    accountId: bigint({ mode: "bigint" }).notNull(),
    /** User or Organization. */
    accountType: text().notNull(),
    accountLogin: text().notNull(),
    targetType: text().notNull(),
    targetId: bigint({ mode: "bigint" }),
    repositoryIds: bigint({ mode: "bigint" }).array().notNull().default(sql`'{}'::bigint[]`),
    permissions: jsonb().notNull().default(sql`'{}'::jsonb`),
    events: text().array().notNull().default(sql`'{}'::text[]`),
    suspendedAt: timestamptz(),
    suspendedBy: text(),
    suspendedReason: text(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("github_installations_account_idx").on(t.accountId),
    index("github_installations_login_idx").on(t.accountLogin),
    index("github_installations_repository_ids_gin").using("gin", t.repositoryIds),
  ],
);

export type GithubAppInstallation = typeof githubAppInstallations.$inferSelect;
export type NewGithubAppInstallation = typeof githubAppInstallations.$inferInsert;
