DROP INDEX "test_runs_ingestion_idx";
