import { sql } from "drizzle-orm";
import { index, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz } from "./columns";
import { users } from "./core";
import { dsrStatus, dsrType } from "./enums";

/** GDPR/CCPA data subject requests. */
export const dataSubjectRequests = pgTable(
  "data_subject_requests",
  {
    id: id(),
    userId: uuid()
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    type: dsrType().notNull(),
    status: dsrStatus().notNull().default("pending"),
    requestedAt: timestamptz().notNull().defaultNow(),
    /** requested_at + the SLA (30 days by default). */
    dueAt: timestamptz().notNull().default(sql`now() + interval '30 days'`),
    processedAt: timestamptz(),
    confirmationSentAt: timestamptz(),
    /** Purged 30 days after completion. */
    exportData: jsonb(),
    /** Never the personal data that was deleted. */
    metadata: jsonb(),
  },
  (t) => [
    index("dsr_user_requested_idx").on(t.userId, t.requestedAt.desc().nullsFirst()),
    index("dsr_open_due_idx").on(t.dueAt).where(sql`${t.status} <> 'completed'`),
  ],
);

/** Append-only timeline of a request. */
export const dataSubjectRequestEvents = pgTable(
  "data_subject_request_events",
  {
    id: id(),
    requestId: uuid()
      .notNull()
      .references(() => dataSubjectRequests.id, { onDelete: "cascade" }),
    status: dsrStatus().notNull(),
    message: text(),
    createdAt: createdAt(),
  },
  (t) => [index("dsr_events_request_created_idx").on(t.requestId, t.createdAt.desc().nullsFirst())],
);

export type DataSubjectRequest = typeof dataSubjectRequests.$inferSelect;
export type NewDataSubjectRequest = typeof dataSubjectRequests.$inferInsert;
export type DataSubjectRequestEvent = typeof dataSubjectRequestEvents.$inferSelect;
export type NewDataSubjectRequestEvent = typeof dataSubjectRequestEvents.$inferInsert;
