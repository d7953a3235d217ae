-- Least privilege (docs/database-schema.md, "Roles"). Three group roles without login rights of their
-- own; grant them to real login roles. Roles belong to the whole server and may already exist (another
-- database, a previous run), so they are created only when missing and never dropped by the down script.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anchorpipe_migrator') THEN
    CREATE ROLE anchorpipe_migrator NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anchorpipe_app') THEN
    CREATE ROLE anchorpipe_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anchorpipe_readonly') THEN
    CREATE ROLE anchorpipe_readonly NOLOGIN;
  END IF;
END
$$;
--> statement-breakpoint
-- The migrator does the DDL.
GRANT USAGE, CREATE ON SCHEMA public TO anchorpipe_migrator;--> statement-breakpoint
GRANT ALL ON ALL TABLES IN SCHEMA public TO anchorpipe_migrator;--> statement-breakpoint
-- What the Worker runs as: read and write application data, no DDL.
GRANT USAGE ON SCHEMA public TO anchorpipe_app, anchorpipe_readonly;--> statement-breakpoint
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO anchorpipe_app;--> statement-breakpoint
-- Append-only history: insert and read, never change.
REVOKE UPDATE, DELETE ON "audit_logs", "role_audit_logs", "data_subject_request_events" FROM anchorpipe_app;--> statement-breakpoint
GRANT SELECT ON ALL TABLES IN SCHEMA public TO anchorpipe_readonly;--> statement-breakpoint
-- Migration bookkeeping is the migrator's alone.
REVOKE ALL ON "anchorpipe_migrations" FROM anchorpipe_app, anchorpipe_readonly;--> statement-breakpoint
-- Partition upkeep is the only DDL the application may cause, through these functions.
REVOKE EXECUTE ON FUNCTION "anchorpipe_ensure_test_run_partitions"(integer, date), "anchorpipe_drop_test_run_partitions_before"(timestamptz) FROM PUBLIC;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION "anchorpipe_ensure_test_run_partitions"(integer, date), "anchorpipe_drop_test_run_partitions_before"(timestamptz) TO anchorpipe_app, anchorpipe_migrator;--> statement-breakpoint
-- Tables created later by the same owner (monthly partitions among them) get the same rights.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anchorpipe_migrator;--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO anchorpipe_app;--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO anchorpipe_readonly;
