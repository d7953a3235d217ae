DROP FUNCTION "anchorpipe_drop_test_run_partitions_before"(timestamptz);--> statement-breakpoint
DROP FUNCTION "anchorpipe_ensure_test_run_partitions"(integer, date);--> statement-breakpoint
DROP FUNCTION "anchorpipe_test_run_partition_name"(date);--> statement-breakpoint
DROP TABLE "test_runs";
