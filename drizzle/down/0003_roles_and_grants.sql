-- Takes back every right the up script gave in this database. The roles themselves stay: they belong to
-- the whole server and other databases may use them.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM anchorpipe_readonly;--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM anchorpipe_app;--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM anchorpipe_migrator;--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION "anchorpipe_ensure_test_run_partitions"(integer, date), "anchorpipe_drop_test_run_partitions_before"(timestamptz) FROM anchorpipe_app, anchorpipe_migrator;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION "anchorpipe_ensure_test_run_partitions"(integer, date), "anchorpipe_drop_test_run_partitions_before"(timestamptz) TO PUBLIC;--> statement-breakpoint
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM anchorpipe_readonly, anchorpipe_app, anchorpipe_migrator;--> statement-breakpoint
REVOKE ALL ON SCHEMA public FROM anchorpipe_readonly, anchorpipe_app, anchorpipe_migrator;
