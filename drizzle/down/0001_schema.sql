DROP TABLE "telemetry_events", "hmac_secrets", "audit_logs", "user_repo_roles", "role_audit_logs",
  "data_subject_request_events", "data_subject_requests", "github_app_installations", "users",
  "test_cases", "repository_configs", "owner_maps", "notifications", "ingestions", "flake_scores",
  "verification_tokens", "sessions", "accounts";--> statement-breakpoint
DROP TYPE "public"."audit_action", "public"."audit_subject", "public"."dsr_status", "public"."dsr_type",
  "public"."flake_class", "public"."notification_severity", "public"."notification_type",
  "public"."owner_source", "public"."repo_role", "public"."test_run_status";
