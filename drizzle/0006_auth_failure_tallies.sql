CREATE TABLE "auth_failure_tallies" (
	"subject_id" text NOT NULL,
	"reason" text NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"failures" integer DEFAULT 1 NOT NULL,
	"last_at" timestamp with time zone NOT NULL,
	CONSTRAINT "auth_failure_tallies_pk" PRIMARY KEY("subject_id","reason","window_start")
);
--> statement-breakpoint
CREATE INDEX "auth_failure_tallies_window_idx" ON "auth_failure_tallies" USING btree ("window_start");--> statement-breakpoint
-- Explicit rights (not only the default privileges of 0003, which apply to whoever ran 0003).
GRANT SELECT, INSERT, UPDATE, DELETE ON "auth_failure_tallies" TO anchorpipe_app;--> statement-breakpoint
GRANT SELECT ON "auth_failure_tallies" TO anchorpipe_readonly;--> statement-breakpoint
GRANT ALL ON "auth_failure_tallies" TO anchorpipe_migrator;
