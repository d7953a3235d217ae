import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  real,
  smallint,
  text,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz, updatedAt } from "./columns";
import { flakeClass, notificationSeverity, notificationType, ownerSource, repoVisibility } from "./enums";

export const repos = pgTable(
  "repos",
  {
    id: id(),
    /** GitHub's repository id; links to github_app_installations.repository_ids. */
    ghId: bigint({ mode: "bigint" }).unique("repos_gh_id_unique"),
    name: text().notNull(),
    owner: text().notNull(),
    defaultBranch: text().notNull().default("main"),
    visibility: repoVisibility().notNull().default("public"),
    config: jsonb(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique("repos_owner_name_unique").on(t.owner, t.name)],
);

export const users = pgTable(
  "users",
  {
    id: id(),
    githubId: text().unique("users_github_id_unique"),
    githubLogin: text(),
    email: text(),
    name: text(),
    createdAt: createdAt(),
    lastLoginAt: timestamptz(),
    telemetryOptIn: boolean().notNull().default(false),
    preferences: jsonb(),
    /** Set by a DSR deletion: the row stays so history keeps its references; the personal data is gone. */
    deletedAt: timestamptz(),
    /** Operators: the global audit view and operator endpoints. Never a bypass of repository roles. */
    isPlatformAdmin: boolean().notNull().default(false),
  },
  (t) => [uniqueIndex("users_email_lower_unique").on(sql`lower(${t.email})`).where(sql`${t.email} IS NOT NULL`)],
);

export const testCases = pgTable(
  "test_cases",
  {
    id: id(),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    path: text().notNull(),
    name: text().notNull(),
    framework: text().notNull().default("unknown"),
    /** JUnit classname or describe path. */
    suite: text(),
    tags: text().array().notNull().default(sql`'{}'::text[]`),
    description: text(),
    lastFailureReason: text(),
    firstSeenAt: timestamptz().notNull().defaultNow(),
    lastSeenAt: timestamptz().notNull().defaultNow(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique("test_cases_identity_unique").on(t.repoId, t.path, t.name, t.framework),
    index("test_cases_tags_gin").using("gin", t.tags),
    // `path LIKE 'prefix%'` (the tests list's path_prefix) as an index range whatever the database's collation.
    index("test_cases_repo_path_prefix_idx").on(t.repoId, t.path.op("text_pattern_ops")),
    check("test_cases_path_length", sql`char_length(${t.path}) <= 1000`),
    check("test_cases_name_length", sql`char_length(${t.name}) <= 1000`),
  ],
);

/** One accepted upload; its unique key makes duplicate uploads detectable for as long as their runs are kept. */
export const ingestions = pgTable(
  "ingestions",
  {
    id: id(),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    idempotencyKey: text().notNull(),
    commitSha: text().notNull(),
    runId: text().notNull(),
    framework: text().notNull(),
    branch: text(),
    pullRequest: text(),
    environment: jsonb(),
    environmentHash: text(),
    signatureScheme: text().notNull(),
    testsTotal: integer().notNull(),
    testsFailed: integer().notNull(),
    testsSkipped: integer().notNull(),
    payloadSha256: text().notNull(),
    /** What the client was told; returned again on a duplicate. */
    response: jsonb().notNull(),
    receivedAt: timestamptz().notNull().defaultNow(),
    completedAt: timestamptz(),
  },
  (t) => [
    unique("ingestions_repo_key_unique").on(t.repoId, t.idempotencyKey),
    // A repository's completed uploads, newest first: the keyset of GET /api/repos/:repoId/ingestions.
    index("ingestions_repo_received_idx")
      .on(t.repoId, t.receivedAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.completedAt} IS NOT NULL`),
    check("ingestions_commit_sha_format", sql`${t.commitSha} ~ '^[0-9a-f]{40}$'`),
    check(
      "ingestions_counts_valid",
      sql`${t.testsTotal} >= 0 AND ${t.testsFailed} >= 0 AND ${t.testsSkipped} >= 0 AND ${t.testsFailed} + ${t.testsSkipped} <= ${t.testsTotal}`,
    ),
  ],
);

export const flakeScores = pgTable(
  "flake_scores",
  {
    id: id(),
    testCaseId: uuid()
      .notNull()
      .unique("flake_scores_test_case_unique")
      .references(() => testCases.id, { onDelete: "cascade" }),
    /** Denormalised so "top flaky tests of a repo" is one index scan. */
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    windowN: integer().notNull().default(50),
    runsConsidered: integer().notNull(),
    passRate: real().notNull(),
    /** Flip rate between consecutive runs. */
    volatility: real().notNull(),
    recencyFail: real().notNull(),
    clustering: real().notNull(),
    score: smallint().notNull(),
    class: flakeClass().notNull().default("stable"),
    firstFlakyAt: timestamptz(),
    lastFlakyAt: timestamptz(),
    /** The explanation: factor values, weights, evidence counts. */
    mlPredictionData: jsonb(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("flake_scores_repo_score_idx").on(t.repoId, t.score.desc().nullsFirst()),
    index("flake_scores_repo_flaky_idx").on(t.repoId, t.score.desc().nullsFirst()).where(sql`${t.score} >= 60`),
    // The rows at rest (stable, no failure in the window): an upload's scoring skips its clean passes of these
    // tests by one range of this small index (src/services/scoring/rescore.ts, changedOnly). The predicate is
    // the query's, word for word, or the planner cannot use it.
    index("flake_scores_resting_idx")
      .on(t.repoId, t.testCaseId)
      .where(sql`${t.class} = 'stable' and ${t.passRate} = 1 and ${t.recencyFail} = 0`),
    check("flake_scores_score_range", sql`${t.score} BETWEEN 0 AND 100`),
    check("flake_scores_window_positive", sql`${t.windowN} > 0 AND ${t.runsConsidered} >= 0`),
  ],
);

export const ownerMaps = pgTable(
  "owner_maps",
  {
    id: id(),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    pattern: text().notNull(),
    /** A user or an @org/team. */
    owner: text().notNull(),
    source: ownerSource().notNull().default("manual"),
    /** Position in CODEOWNERS; later lines win. */
    line: integer(),
    /**
     * The pattern compiled to a regular expression over a test's path that means the same in JavaScript
     * and in PostgreSQL's `~` (src/services/codeowners.ts), so owners are found inside SQL. Null: no pattern
     * match in SQL (manual and heuristic rows).
     */
    pathRegex: text(),
    /**
     * A piece of the pattern that every path it matches contains (its longest literal run, '' when it has
     * none): a cheap `strpos` that spares PostgreSQL compiling the expressions of rules that cannot match.
     */
    pathLiteral: text(),
    confidenceScore: real(),
    createdAt: createdAt(),
  },
  (t) => [
    index("owner_maps_repo_pattern_idx").on(t.repoId, t.pattern),
    check("owner_maps_confidence_range", sql`${t.confidenceScore} IS NULL OR ${t.confidenceScore} BETWEEN 0 AND 1`),
  ],
);

export const repositoryConfigs = pgTable(
  "repository_configs",
  {
    id: id(),
    repoId: uuid()
      .notNull()
      .unique("repository_configs_repo_unique")
      .references(() => repos.id, { onDelete: "cascade" }),
    config: jsonb().notNull().default(sql`'{}'::jsonb`),
    retentionDays: integer().notNull().default(30),
    scoringThreshold: smallint().notNull().default(60),
    requireTimestampedSignature: boolean().notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check("repository_configs_retention_range", sql`${t.retentionDays} BETWEEN 1 AND 3650`),
    check("repository_configs_threshold_range", sql`${t.scoringThreshold} BETWEEN 0 AND 100`),
  ],
);

export const notifications = pgTable(
  "notifications",
  {
    id: id(),
    /** Null for a platform-wide notification (a data request's deadline reminder to a platform admin). */
    repoId: uuid().references(() => repos.id, { onDelete: "cascade" }),
    /** Null means the whole repository. */
    userId: uuid().references(() => users.id, { onDelete: "cascade" }),
    type: notificationType().notNull(),
    title: text().notNull(),
    message: text().notNull(),
    severity: notificationSeverity().notNull().default("info"),
    read: boolean().notNull().default(false),
    actionUrl: text(),
    metadata: jsonb(),
    createdAt: createdAt(),
    readAt: timestamptz(),
  },
  (t) => [
    index("notifications_repo_created_idx").on(t.repoId, t.createdAt.desc().nullsFirst()),
    index("notifications_user_read_created_idx").on(t.userId, t.read, t.createdAt.desc().nullsFirst()),
  ],
);

export type Repo = typeof repos.$inferSelect;
export type NewRepo = typeof repos.$inferInsert;
export type User = typeof users.$inferSelect;
export type NewUser = typeof users.$inferInsert;
export type TestCase = typeof testCases.$inferSelect;
export type NewTestCase = typeof testCases.$inferInsert;
export type Ingestion = typeof ingestions.$inferSelect;
export type NewIngestion = typeof ingestions.$inferInsert;
export type FlakeScore = typeof flakeScores.$inferSelect;
export type NewFlakeScore = typeof flakeScores.$inferInsert;
export type OwnerMap = typeof ownerMaps.$inferSelect;
export type NewOwnerMap = typeof ownerMaps.$inferInsert;
export type RepositoryConfig = typeof repositoryConfigs.$inferSelect;
export type NewRepositoryConfig = typeof repositoryConfigs.$inferInsert;
export type Notification = typeof notifications.$inferSelect;
export type NewNotification = typeof notifications.$inferInsert;
