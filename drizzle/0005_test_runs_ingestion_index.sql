-- Deleting an ingestion (directly, or through its repo) cascades to its test runs. Without an index on
-- ingestion_id each of those deletes scans every partition of test_runs: deleting a repo with a million
-- runs took 50 s in the seed's measurements. Not in the ST-102 list; added for the cascades.
CREATE INDEX "test_runs_ingestion_idx" ON "test_runs" USING btree ("ingestion_id");
