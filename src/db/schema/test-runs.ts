import { sql } from "drizzle-orm";
import { integer, jsonb, pgTable, primaryKey, text, uuid } from "drizzle-orm/pg-core";
import { timestamptz } from "./columns";
import { ingestions, repos, testCases } from "./core";
import { testRunStatus } from "./enums";

/**
 * One execution of one test case. In the database this is the parent of a
 * table partitioned by month on created_at (see drizzle/0002_test_runs_partitioned.sql
 * and docs/adr/0001-partition-test-runs-by-created-at.md). drizzle-kit cannot
 * express partitioning, so this file is left out of drizzle.config.ts and the
 * table, its keys, indexes and partitions are created by a custom migration;
 * the declaration here is what queries are written against.
 */
export const testRuns = pgTable(
  "test_runs",
  {
    id: uuid().notNull().default(sql`gen_random_uuid()`),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    testCaseId: uuid()
      .notNull()
      .references(() => testCases.id, { onDelete: "cascade" }),
    ingestionId: uuid()
      .notNull()
      .references(() => ingestions.id, { onDelete: "cascade" }),
    /** Lowercase hex, 40 characters. */
    commitSha: text().notNull(),
    branch: text(),
    pullRequest: text(),
    /** The CI run that produced this result. */
    runId: text().notNull(),
    status: testRunStatus().notNull(),
    durationMs: integer(),
    startedAt: timestamptz().notNull(),
    /** Failed attempts before the final status; > 0 with status pass is a retry-recovered flake. */
    rerunCount: integer().notNull().default(0),
    /** Redacted and capped before storage. */
    failureDetails: text(),
    environmentHash: text(),
    metadata: jsonb(),
    createdAt: timestamptz().notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: "test_runs_pkey", columns: [t.id, t.createdAt] })],
);

export type TestRun = typeof testRuns.$inferSelect;
export type NewTestRun = typeof testRuns.$inferInsert;
