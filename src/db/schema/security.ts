import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  boolean,
  index,
  inet,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz } from "./columns";
import { repos, users } from "./core";
import { auditAction, auditSubject } from "./enums";

/** Append-only (a trigger rejects UPDATE and DELETE). metadata never holds secrets. */
export const auditLogs = pgTable(
  "audit_logs",
  {
    id: id(),
    actorId: uuid().references(() => users.id, { onDelete: "set null" }),
    action: auditAction().notNull(),
    subject: auditSubject().notNull(),
    subjectId: text(),
    description: text(),
    metadata: jsonb(),
    ipAddress: inet(),
    userAgent: text(),
    requestId: text(),
    createdAt: createdAt(),
  },
  (t) => [
    index("audit_logs_subject_idx").on(t.subject, t.subjectId),
    index("audit_logs_created_idx").on(t.createdAt.desc().nullsFirst()),
    index("audit_logs_action_created_idx").on(t.action, t.createdAt.desc().nullsFirst()),
    // A repository's audit log filtered by action, newest first: the keyset of GET /api/repos/:repoId/audit.
    index("audit_logs_subject_action_created_idx").on(
      t.subjectId,
      t.action,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index("audit_logs_metadata_gin").using("gin", t.metadata.op("jsonb_path_ops")),
  ],
);

/**
 * A repository's signing secrets, AES-256-GCM-encrypted under a key-encryption
 * key held as a Worker secret; the additional data binds repo_id and the
 * secret's id, so a row copied to another repo fails to decrypt.
 */
export const hmacSecrets = pgTable(
  "hmac_secrets",
  {
    id: id(),
    repoId: uuid()
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    name: text().notNull(),
    /** Short public id, sent by clients that name their key. */
    keyId: text().notNull(),
    secretCiphertext: text().notNull(),
    kekVersion: smallint().notNull(),
    /** For lookup and audit, not for verification. */
    secretSha256: text().notNull(),
    active: boolean().notNull().default(true),
    revoked: boolean().notNull().default(false),
    lastUsedAt: timestamptz(),
    rotatedFrom: uuid().references((): AnyPgColumn => hmacSecrets.id, { onDelete: "set null" }),
    createdBy: uuid().references(() => users.id, { onDelete: "set null" }),
    createdAt: createdAt(),
    revokedAt: timestamptz(),
    expiresAt: timestamptz(),
  },
  (t) => [
    index("hmac_secrets_active_repo_idx").on(t.repoId).where(sql`${t.active} AND NOT ${t.revoked}`),
    index("hmac_secrets_sha256_idx").on(t.secretSha256),
  ],
);

/**
 * Failed upload authentications counted per claimed repository, reason and
 * minute. The audit log gets one hmac_auth_failure row when a window opens;
 * later failures in that window only add to `failures` here, so a flood of bad
 * requests cannot grow the append-only audit table faster than one row per
 * repository, reason and minute (docs/adr/0005-rate-limits.md).
 */
export const authFailureTallies = pgTable(
  "auth_failure_tallies",
  {
    /** The repository id the request claimed, or '' when it named none. */
    subjectId: text().notNull(),
    reason: text().notNull(),
    windowStart: timestamptz().notNull(),
    failures: integer().notNull().default(1),
    lastAt: timestamptz().notNull(),
  },
  (t) => [
    primaryKey({ name: "auth_failure_tallies_pk", columns: [t.subjectId, t.reason, t.windowStart] }),
    index("auth_failure_tallies_window_idx").on(t.windowStart),
  ],
);

export type AuditLog = typeof auditLogs.$inferSelect;
export type NewAuditLog = typeof auditLogs.$inferInsert;
export type HmacSecret = typeof hmacSecrets.$inferSelect;
export type NewHmacSecret = typeof hmacSecrets.$inferInsert;
