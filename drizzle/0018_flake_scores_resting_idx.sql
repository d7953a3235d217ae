-- The flake_scores rows at rest (stable, no failure in the window): an upload's scoring (changedOnly in
-- src/services/scoring/rescore.ts) skips its clean passes of these tests through one range of this small index
-- instead of reading every stored explanation. The predicate is the query's, or the planner cannot use it.
CREATE INDEX "flake_scores_resting_idx" ON "flake_scores" USING btree ("repo_id","test_case_id") WHERE "flake_scores"."class" = 'stable' and "flake_scores"."pass_rate" = 1 and "flake_scores"."recency_fail" = 0;