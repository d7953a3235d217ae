DROP INDEX "flake_scores_resting_idx";
