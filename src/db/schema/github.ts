import { sql } from "drizzle-orm";
import { bigint, check, index, integer, jsonb, pgTable, text, unique, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz, updatedAt } from "./columns";
import { repos } from "./core";

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

/**
 * Webhook deliveries already handled, by GitHub's X-GitHub-Delivery id: a redelivery of one of these is
 * acknowledged and ignored. Kept for 30 days (GitHub lets a delivery be redelivered for 3).
 */
export const githubWebhookDeliveries = pgTable(
  "github_webhook_deliveries",
  {
    deliveryId: uuid().primaryKey(),
    event: text().notNull(),
    action: text(),
    installationId: bigint({ mode: "bigint" }),
    /** applied: the installation change was made; queued: work went to the queue; ignored: nothing to do. */
    outcome: text().notNull(),
    receivedAt: timestamptz().notNull().defaultNow(),
  },
  (t) => [
    index("github_webhook_deliveries_received_idx").on(t.receivedAt),
    check("github_webhook_deliveries_outcome_valid", sql`${t.outcome} IN ('applied', 'queued', 'ignored')`),
  ],
);

/**
 * A completed workflow run attempt whose test reports the App ingests: its progress through the queue, the
 * dead-letter record when retries ran out, and the check run written for it.
 */
export const githubWorkflowRuns = pgTable(
  "github_workflow_runs",
  {
    id: id(),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    installationId: bigint({ mode: "bigint" }).notNull(),
    workflowRunId: bigint({ mode: "bigint" }).notNull(),
    runAttempt: integer().notNull(),
    headSha: text().notNull(),
    /** Pull request numbers the run belongs to (GitHub's workflow_run.pull_requests). */
    pullRequests: integer().array().notNull().default(sql`'{}'::integer[]`),
    status: text().notNull().default("queued"),
    /** Queue deliveries of this run's message so far. */
    attempts: integer().notNull().default(0),
    lastError: text(),
    /** What was ingested: artifacts, reports and ingestion ids, counts. */
    result: jsonb(),
    checkRunId: bigint({ mode: "bigint" }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    completedAt: timestamptz(),
  },
  (t) => [
    unique("github_workflow_runs_run_attempt_unique").on(t.repoId, t.workflowRunId, t.runAttempt),
    index("github_workflow_runs_head_sha_idx").on(t.repoId, t.headSha),
    check(
      "github_workflow_runs_status_valid",
      sql`${t.status} IN ('queued', 'processing', 'completed', 'skipped', 'dead_lettered')`,
    ),
    check("github_workflow_runs_head_sha_format", sql`${t.headSha} ~ '^[0-9a-f]{40}$'`),
  ],
);

export type GithubWorkflowRun = typeof githubWorkflowRuns.$inferSelect;
