import { index, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { id, timestamptz } from "./columns";
import { repos, users } from "./core";

export const telemetryEvents = pgTable(
  "telemetry_events",
  {
    id: id(),
    repoId: uuid().references(() => repos.id, { onDelete: "set null" }),
    userId: uuid().references(() => users.id, { onDelete: "set null" }),
    eventType: text().notNull(),
    eventData: jsonb(),
    eventTimestamp: timestamptz().notNull().defaultNow(),
  },
  (t) => [
    index("telemetry_events_type_time_idx").on(t.eventType, t.eventTimestamp.desc().nullsFirst()),
    index("telemetry_events_repo_idx").on(t.repoId),
    index("telemetry_events_time_idx").on(t.eventTimestamp.desc().nullsFirst()),
    index("telemetry_events_data_gin").using("gin", t.eventData.op("jsonb_path_ops")),
  ],
);

export type TelemetryEvent = typeof telemetryEvents.$inferSelect;
export type NewTelemetryEvent = typeof telemetryEvents.$inferInsert;
