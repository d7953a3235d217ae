CREATE TABLE "job_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"job" text NOT NULL,
	"scheduled_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"outcome" text NOT NULL,
	"counts" jsonb,
	"error" text,
	"lease_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "job_runs_outcome_valid" CHECK ("job_runs"."outcome" IN ('running', 'succeeded', 'failed', 'skipped')),
	CONSTRAINT "job_runs_finished_when_done" CHECK (("job_runs"."outcome" = 'running') = ("job_runs"."finished_at" IS NULL))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "job_runs_running_lease_unique" ON "job_runs" USING btree ("job") WHERE "job_runs"."outcome" = 'running';--> statement-breakpoint
CREATE UNIQUE INDEX "job_runs_job_scheduled_unique" ON "job_runs" USING btree ("job","scheduled_at") WHERE "job_runs"."outcome" IN ('running', 'succeeded');--> statement-breakpoint
CREATE INDEX "job_runs_last_succeeded_idx" ON "job_runs" USING btree ("job","finished_at" DESC NULLS FIRST) WHERE "job_runs"."outcome" = 'succeeded';--> statement-breakpoint
CREATE INDEX "job_runs_job_started_idx" ON "job_runs" USING btree ("job","started_at" DESC NULLS FIRST);--> statement-breakpoint
-- Explicit rights (not only the default privileges of 0003, which apply to whoever ran 0003).
GRANT SELECT, INSERT, UPDATE, DELETE ON "job_runs" TO anchorpipe_app;--> statement-breakpoint
GRANT SELECT ON "job_runs" TO anchorpipe_readonly;--> statement-breakpoint
GRANT ALL ON "job_runs" TO anchorpipe_migrator;
