import { sql } from "drizzle-orm";
import { check, index, jsonb, pgTable, text, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz } from "./columns";
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

/**
 * The scheduled jobs' ledger: one row per attempt to run a job (src/jobs). The partial unique index on
 * (job) where outcome = 'running' is the lease: a second concurrent run of the same job cannot insert its
 * row; `lease_until` lets the next run take over from one that crashed without finishing. The partial
 * unique (job, scheduled_at) keeps a trigger that already ran (or is running) from running again, while a
 * failed or skipped one may be retried with the same scheduled time.
 */
export const jobRuns = pgTable(
  "job_runs",
  {
    id: id(),
    job: text().notNull(),
    /** The trigger's scheduled time: every time-based cut-off of the run. */
    scheduledAt: timestamptz().notNull(),
    startedAt: timestamptz().notNull().defaultNow(),
    finishedAt: timestamptz(),
    outcome: text().notNull(),
    counts: jsonb(),
    /** What failed, without the statement's parameters (describeFailure). */
    error: text(),
    /** While running: when another run may consider this one dead and take the lease. */
    leaseUntil: timestamptz(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("job_runs_running_lease_unique").on(t.job).where(sql`${t.outcome} = 'running'`),
    uniqueIndex("job_runs_job_scheduled_unique")
      .on(t.job, t.scheduledAt)
      .where(sql`${t.outcome} IN ('running', 'succeeded')`),
    index("job_runs_last_succeeded_idx")
      .on(t.job, t.finishedAt.desc().nullsFirst())
      .where(sql`${t.outcome} = 'succeeded'`),
    index("job_runs_job_started_idx").on(t.job, t.startedAt.desc().nullsFirst()),
    check("job_runs_outcome_valid", sql`${t.outcome} IN ('running', 'succeeded', 'failed', 'skipped')`),
    check("job_runs_finished_when_done", sql`(${t.outcome} = 'running') = (${t.finishedAt} IS NULL)`),
  ],
);

export type JobRun = typeof jobRuns.$inferSelect;
export type NewJobRun = typeof jobRuns.$inferInsert;
