-- test_runs, partitioned by month on created_at (docs/adr/0001-partition-test-runs-by-created-at.md).
-- Written by hand: drizzle-kit cannot express partitioning. src/db/schema/test-runs.ts declares the
-- same parent table for queries and is left out of drizzle.config.ts.
CREATE TABLE "test_runs" (
	"id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"test_case_id" uuid NOT NULL,
	"ingestion_id" uuid NOT NULL,
	"commit_sha" char(40) NOT NULL,
	"branch" text,
	"pull_request" text,
	"run_id" text NOT NULL,
	"status" "test_run_status" NOT NULL,
	"duration_ms" integer,
	"started_at" timestamp with time zone NOT NULL,
	"rerun_count" integer DEFAULT 0 NOT NULL,
	"failure_details" text,
	"environment_hash" text,
	"metadata" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "test_runs_pkey" PRIMARY KEY ("id", "created_at"),
	CONSTRAINT "test_runs_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade,
	CONSTRAINT "test_runs_test_case_id_test_cases_id_fk" FOREIGN KEY ("test_case_id") REFERENCES "public"."test_cases"("id") ON DELETE cascade,
	CONSTRAINT "test_runs_ingestion_id_ingestions_id_fk" FOREIGN KEY ("ingestion_id") REFERENCES "public"."ingestions"("id") ON DELETE cascade,
	CONSTRAINT "test_runs_commit_sha_format" CHECK ("commit_sha" ~ '^[0-9a-f]{40}$'),
	CONSTRAINT "test_runs_duration_nonnegative" CHECK ("duration_ms" IS NULL OR "duration_ms" >= 0),
	CONSTRAINT "test_runs_rerun_count_nonnegative" CHECK ("rerun_count" >= 0)
) PARTITION BY RANGE ("created_at");
--> statement-breakpoint
-- Indexes on the parent are created on every partition, present and future.
CREATE INDEX "test_runs_test_case_started_idx" ON "test_runs" USING btree ("test_case_id", "started_at" DESC);--> statement-breakpoint
CREATE INDEX "test_runs_repo_started_idx" ON "test_runs" USING btree ("repo_id", "started_at" DESC);--> statement-breakpoint
CREATE INDEX "test_runs_repo_commit_idx" ON "test_runs" USING btree ("repo_id", "commit_sha");--> statement-breakpoint
CREATE INDEX "test_runs_environment_hash_idx" ON "test_runs" USING btree ("environment_hash");--> statement-breakpoint
-- Catches rows whose month has no partition yet. It should stay empty; upkeep reports rows in it.
CREATE TABLE "test_runs_default" PARTITION OF "test_runs" DEFAULT;--> statement-breakpoint

-- Partition upkeep. SECURITY DEFINER so that the application role, which has no DDL rights, can run
-- the scheduled upkeep through these functions and nothing else.
CREATE FUNCTION "anchorpipe_test_run_partition_name"(month date) RETURNS text
  LANGUAGE sql IMMUTABLE
  AS $$ SELECT 'test_runs_p' || to_char(month, 'YYYY_MM') $$;
--> statement-breakpoint
-- Creates the monthly partitions from from_month through months_ahead months later, where missing.
-- Rows that already landed in the default partition for such a month are moved into the new one.
-- Returns the names of the partitions it created; running it again creates nothing.
CREATE FUNCTION "anchorpipe_ensure_test_run_partitions"(months_ahead integer DEFAULT 1, from_month date DEFAULT now()::date)
  RETURNS SETOF text
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
DECLARE
  month_start date;
  month_end date;
  partition_name text;
BEGIN
  IF months_ahead < 0 OR months_ahead > 120 THEN
    RAISE EXCEPTION 'months_ahead must be between 0 and 120, got %', months_ahead USING ERRCODE = '22023';
  END IF;
  FOR i IN 0..months_ahead LOOP
    month_start := (date_trunc('month', from_month) + make_interval(months => i))::date;
    month_end := (month_start + interval '1 month')::date;
    partition_name := anchorpipe_test_run_partition_name(month_start);
    CONTINUE WHEN to_regclass('public.' || quote_ident(partition_name)) IS NOT NULL;
    CREATE TEMP TABLE anchorpipe_moved_runs (LIKE public.test_runs) ON COMMIT DROP;
    WITH moved AS (
      DELETE FROM public.test_runs_default
      WHERE created_at >= month_start AND created_at < month_end
      RETURNING *
    ) INSERT INTO anchorpipe_moved_runs SELECT * FROM moved;
    EXECUTE format('CREATE TABLE public.%I PARTITION OF public.test_runs FOR VALUES FROM (%L) TO (%L)',
      partition_name, month_start::timestamptz, month_end::timestamptz);
    INSERT INTO public.test_runs SELECT * FROM anchorpipe_moved_runs;
    DROP TABLE anchorpipe_moved_runs;
    RETURN NEXT partition_name;
  END LOOP;
END;
$$;
--> statement-breakpoint
-- Drops whole monthly partitions that end on or before the cut-off (retention). Returns their names.
CREATE FUNCTION "anchorpipe_drop_test_run_partitions_before"(cutoff timestamptz)
  RETURNS SETOF text
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
DECLARE
  partition_name text;
BEGIN
  FOR partition_name IN
    SELECT c.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'public.test_runs'::regclass
      AND c.relname ~ '^test_runs_p[0-9]{4}_[0-9]{2}$'
      AND (to_date(substr(c.relname, 12), 'YYYY_MM') + interval '1 month') <= cutoff
    ORDER BY c.relname
  LOOP
    EXECUTE format('DROP TABLE public.%I', partition_name);
    RETURN NEXT partition_name;
  END LOOP;
END;
$$;
--> statement-breakpoint
SELECT "anchorpipe_ensure_test_run_partitions"(1);
