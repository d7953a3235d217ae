CREATE TABLE "github_webhook_deliveries" (
	"delivery_id" uuid PRIMARY KEY NOT NULL,
	"event" text NOT NULL,
	"action" text,
	"installation_id" bigint,
	"outcome" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "github_webhook_deliveries_outcome_valid" CHECK ("github_webhook_deliveries"."outcome" IN ('applied', 'queued', 'ignored'))
);
--> statement-breakpoint
CREATE TABLE "github_workflow_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"installation_id" bigint NOT NULL,
	"workflow_run_id" bigint NOT NULL,
	"run_attempt" integer NOT NULL,
	"head_sha" text NOT NULL,
	"pull_requests" integer[] DEFAULT '{}'::integer[] NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"result" jsonb,
	"check_run_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "github_workflow_runs_run_attempt_unique" UNIQUE("repo_id","workflow_run_id","run_attempt"),
	CONSTRAINT "github_workflow_runs_status_valid" CHECK ("github_workflow_runs"."status" IN ('queued', 'processing', 'completed', 'skipped', 'dead_lettered')),
	CONSTRAINT "github_workflow_runs_head_sha_format" CHECK ("github_workflow_runs"."head_sha" ~ '^[0-9a-f]{40}$')
);
--> statement-breakpoint
ALTER TABLE "github_workflow_runs" ADD CONSTRAINT "github_workflow_runs_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "github_webhook_deliveries_received_idx" ON "github_webhook_deliveries" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "github_workflow_runs_head_sha_idx" ON "github_workflow_runs" USING btree ("repo_id","head_sha");--> statement-breakpoint
-- Explicit rights (not only the default privileges of 0003, which apply to whoever ran 0003).
GRANT SELECT, INSERT, UPDATE, DELETE ON "github_webhook_deliveries", "github_workflow_runs" TO anchorpipe_app;--> statement-breakpoint
GRANT SELECT ON "github_webhook_deliveries", "github_workflow_runs" TO anchorpipe_readonly;--> statement-breakpoint
GRANT ALL ON "github_webhook_deliveries", "github_workflow_runs" TO anchorpipe_migrator;
