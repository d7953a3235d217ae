DROP INDEX "audit_logs_subject_action_created_idx";
DROP INDEX "test_cases_repo_path_prefix_idx";
DROP INDEX "ingestions_repo_received_idx";
