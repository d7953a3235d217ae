CREATE TYPE "public"."audit_action" AS ENUM('login_success', 'login_failure', 'user_created', 'role_assigned', 'role_removed', 'dsr_export_request', 'dsr_export_download', 'dsr_deletion_request', 'config_updated', 'token_created', 'token_revoked', 'hmac_auth_success', 'hmac_auth_failure', 'hmac_secret_created', 'hmac_secret_revoked', 'hmac_secret_rotated', 'ingestion_accepted', 'ingestion_rejected', 'retention_purge', 'other');--> statement-breakpoint
CREATE TYPE "public"."audit_subject" AS ENUM('user', 'repo', 'dsr', 'configuration', 'security', 'session', 'token', 'system');--> statement-breakpoint
CREATE TYPE "public"."dsr_status" AS ENUM('pending', 'processing', 'completed', 'failed');--> statement-breakpoint
CREATE TYPE "public"."dsr_type" AS ENUM('export', 'deletion');--> statement-breakpoint
CREATE TYPE "public"."flake_class" AS ENUM('stable', 'flaky', 'highly_flaky', 'broken', 'suspect');--> statement-breakpoint
CREATE TYPE "public"."notification_severity" AS ENUM('info', 'warning', 'error', 'critical');--> statement-breakpoint
CREATE TYPE "public"."notification_type" AS ENUM('flake_detected', 'score_threshold_breach', 'system_alert', 'ci_integration', 'other');--> statement-breakpoint
CREATE TYPE "public"."owner_source" AS ENUM('CODEOWNERS', 'manual', 'heuristic');--> statement-breakpoint
CREATE TYPE "public"."repo_role" AS ENUM('admin', 'member', 'read_only');--> statement-breakpoint
CREATE TYPE "public"."test_run_status" AS ENUM('pass', 'fail', 'skip');--> statement-breakpoint
CREATE TABLE "accounts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"provider" text NOT NULL,
	"provider_account_id" text NOT NULL,
	"access_token" text,
	"refresh_token" text,
	"token_type" text,
	"scope" text,
	"expires_at" integer,
	CONSTRAINT "accounts_provider_account_unique" UNIQUE("provider","provider_account_id")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"session_token" text NOT NULL,
	"expires" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	CONSTRAINT "sessions_session_token_unique" UNIQUE("session_token")
);
--> statement-breakpoint
CREATE TABLE "verification_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"identifier" text NOT NULL,
	"token" text NOT NULL,
	"expires" timestamp with time zone NOT NULL,
	CONSTRAINT "verification_tokens_token_unique" UNIQUE("token"),
	CONSTRAINT "verification_tokens_identifier_token_unique" UNIQUE("identifier","token")
);
--> statement-breakpoint
CREATE TABLE "flake_scores" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"test_case_id" uuid NOT NULL,
	"repo_id" uuid NOT NULL,
	"window_n" integer DEFAULT 50 NOT NULL,
	"runs_considered" integer NOT NULL,
	"pass_rate" real NOT NULL,
	"volatility" real NOT NULL,
	"recency_fail" real NOT NULL,
	"clustering" real NOT NULL,
	"score" smallint NOT NULL,
	"class" "flake_class" DEFAULT 'stable' NOT NULL,
	"first_flaky_at" timestamp with time zone,
	"last_flaky_at" timestamp with time zone,
	"ml_prediction_data" jsonb,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "flake_scores_test_case_unique" UNIQUE("test_case_id"),
	CONSTRAINT "flake_scores_score_range" CHECK ("flake_scores"."score" BETWEEN 0 AND 100),
	CONSTRAINT "flake_scores_window_positive" CHECK ("flake_scores"."window_n" > 0 AND "flake_scores"."runs_considered" >= 0)
);
--> statement-breakpoint
CREATE TABLE "ingestions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"idempotency_key" text NOT NULL,
	"commit_sha" text NOT NULL,
	"run_id" text NOT NULL,
	"framework" text NOT NULL,
	"branch" text,
	"pull_request" text,
	"environment" jsonb,
	"environment_hash" text,
	"signature_scheme" text NOT NULL,
	"tests_total" integer NOT NULL,
	"tests_failed" integer NOT NULL,
	"tests_skipped" integer NOT NULL,
	"payload_sha256" text NOT NULL,
	"response" jsonb NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "ingestions_repo_key_unique" UNIQUE("repo_id","idempotency_key"),
	CONSTRAINT "ingestions_commit_sha_format" CHECK ("ingestions"."commit_sha" ~ '^[0-9a-f]{40}$'),
	CONSTRAINT "ingestions_counts_valid" CHECK ("ingestions"."tests_total" >= 0 AND "ingestions"."tests_failed" >= 0 AND "ingestions"."tests_skipped" >= 0 AND "ingestions"."tests_failed" + "ingestions"."tests_skipped" <= "ingestions"."tests_total")
);
--> statement-breakpoint
CREATE TABLE "notifications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"user_id" uuid,
	"type" "notification_type" NOT NULL,
	"title" text NOT NULL,
	"message" text NOT NULL,
	"severity" "notification_severity" DEFAULT 'info' NOT NULL,
	"read" boolean DEFAULT false NOT NULL,
	"action_url" text,
	"metadata" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"read_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "owner_maps" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"pattern" text NOT NULL,
	"owner" text NOT NULL,
	"source" "owner_source" DEFAULT 'manual' NOT NULL,
	"line" integer,
	"confidence_score" real,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "owner_maps_confidence_range" CHECK ("owner_maps"."confidence_score" IS NULL OR "owner_maps"."confidence_score" BETWEEN 0 AND 1)
);
--> statement-breakpoint
CREATE TABLE "repository_configs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"config" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"retention_days" integer DEFAULT 30 NOT NULL,
	"scoring_threshold" smallint DEFAULT 60 NOT NULL,
	"require_timestamped_signature" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "repository_configs_repo_unique" UNIQUE("repo_id"),
	CONSTRAINT "repository_configs_retention_range" CHECK ("repository_configs"."retention_days" BETWEEN 1 AND 3650),
	CONSTRAINT "repository_configs_threshold_range" CHECK ("repository_configs"."scoring_threshold" BETWEEN 0 AND 100)
);
--> statement-breakpoint
CREATE TABLE "test_cases" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"path" text NOT NULL,
	"name" text NOT NULL,
	"framework" text DEFAULT 'unknown' NOT NULL,
	"suite" text,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"description" text,
	"last_failure_reason" text,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "test_cases_identity_unique" UNIQUE("repo_id","path","name","framework"),
	CONSTRAINT "test_cases_path_length" CHECK (char_length("test_cases"."path") <= 1000),
	CONSTRAINT "test_cases_name_length" CHECK (char_length("test_cases"."name") <= 1000)
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"github_id" text,
	"github_login" text,
	"email" text,
	"name" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_login_at" timestamp with time zone,
	"telemetry_opt_in" boolean DEFAULT false NOT NULL,
	"preferences" jsonb,
	"deleted_at" timestamp with time zone,
	CONSTRAINT "users_github_id_unique" UNIQUE("github_id")
);
--> statement-breakpoint
CREATE TABLE "github_app_installations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"installation_id" bigint NOT NULL,
	"account_id" bigint NOT NULL,
	"account_type" text NOT NULL,
	"account_login" text NOT NULL,
	"target_type" text NOT NULL,
	"target_id" bigint,
	"repository_ids" bigint[] DEFAULT '{}'::bigint[] NOT NULL,
	"permissions" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"events" text[] DEFAULT '{}'::text[] NOT NULL,
	"suspended_at" timestamp with time zone,
	"suspended_by" text,
	"suspended_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "github_app_installations_installation_unique" UNIQUE("installation_id")
);
--> statement-breakpoint
CREATE TABLE "data_subject_request_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"request_id" uuid NOT NULL,
	"status" "dsr_status" NOT NULL,
	"message" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "data_subject_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"type" "dsr_type" NOT NULL,
	"status" "dsr_status" DEFAULT 'pending' NOT NULL,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"due_at" timestamp with time zone DEFAULT now() + interval '30 days' NOT NULL,
	"processed_at" timestamp with time zone,
	"confirmation_sent_at" timestamp with time zone,
	"export_data" jsonb,
	"metadata" jsonb
);
--> statement-breakpoint
CREATE TABLE "role_audit_logs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"actor_id" uuid,
	"target_user_id" uuid,
	"repo_id" uuid,
	"action" text NOT NULL,
	"old_role" "repo_role",
	"new_role" "repo_role",
	"metadata" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "role_audit_logs_action_valid" CHECK ("role_audit_logs"."action" IN ('assigned', 'updated', 'removed'))
);
--> statement-breakpoint
CREATE TABLE "user_repo_roles" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"repo_id" uuid NOT NULL,
	"role" "repo_role" NOT NULL,
	"assigned_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "user_repo_roles_user_repo_unique" UNIQUE("user_id","repo_id")
);
--> statement-breakpoint
CREATE TABLE "audit_logs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"actor_id" uuid,
	"action" "audit_action" NOT NULL,
	"subject" "audit_subject" NOT NULL,
	"subject_id" text,
	"description" text,
	"metadata" jsonb,
	"ip_address" "inet",
	"user_agent" text,
	"request_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "hmac_secrets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"name" text NOT NULL,
	"key_id" text NOT NULL,
	"secret_ciphertext" text NOT NULL,
	"kek_version" smallint NOT NULL,
	"secret_sha256" text NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"revoked" boolean DEFAULT false NOT NULL,
	"last_used_at" timestamp with time zone,
	"rotated_from" uuid,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"expires_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "telemetry_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid,
	"user_id" uuid,
	"event_type" text NOT NULL,
	"event_data" jsonb,
	"event_timestamp" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flake_scores" ADD CONSTRAINT "flake_scores_test_case_id_test_cases_id_fk" FOREIGN KEY ("test_case_id") REFERENCES "public"."test_cases"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flake_scores" ADD CONSTRAINT "flake_scores_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ingestions" ADD CONSTRAINT "ingestions_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "notifications" ADD CONSTRAINT "notifications_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "notifications" ADD CONSTRAINT "notifications_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "owner_maps" ADD CONSTRAINT "owner_maps_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_configs" ADD CONSTRAINT "repository_configs_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "test_cases" ADD CONSTRAINT "test_cases_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_subject_request_events" ADD CONSTRAINT "data_subject_request_events_request_id_data_subject_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."data_subject_requests"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_subject_requests" ADD CONSTRAINT "data_subject_requests_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "role_audit_logs" ADD CONSTRAINT "role_audit_logs_actor_id_users_id_fk" FOREIGN KEY ("actor_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "role_audit_logs" ADD CONSTRAINT "role_audit_logs_target_user_id_users_id_fk" FOREIGN KEY ("target_user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "role_audit_logs" ADD CONSTRAINT "role_audit_logs_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_repo_roles" ADD CONSTRAINT "user_repo_roles_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_repo_roles" ADD CONSTRAINT "user_repo_roles_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_repo_roles" ADD CONSTRAINT "user_repo_roles_assigned_by_users_id_fk" FOREIGN KEY ("assigned_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "audit_logs" ADD CONSTRAINT "audit_logs_actor_id_users_id_fk" FOREIGN KEY ("actor_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hmac_secrets" ADD CONSTRAINT "hmac_secrets_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hmac_secrets" ADD CONSTRAINT "hmac_secrets_rotated_from_hmac_secrets_id_fk" FOREIGN KEY ("rotated_from") REFERENCES "public"."hmac_secrets"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hmac_secrets" ADD CONSTRAINT "hmac_secrets_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "telemetry_events" ADD CONSTRAINT "telemetry_events_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "telemetry_events" ADD CONSTRAINT "telemetry_events_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "accounts_user_idx" ON "accounts" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "sessions_expires_idx" ON "sessions" USING btree ("expires");--> statement-breakpoint
CREATE INDEX "flake_scores_repo_score_idx" ON "flake_scores" USING btree ("repo_id","score" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "flake_scores_repo_flaky_idx" ON "flake_scores" USING btree ("repo_id","score" DESC NULLS FIRST) WHERE "flake_scores"."score" >= 60;--> statement-breakpoint
CREATE INDEX "notifications_repo_created_idx" ON "notifications" USING btree ("repo_id","created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "notifications_user_read_created_idx" ON "notifications" USING btree ("user_id","read","created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "owner_maps_repo_pattern_idx" ON "owner_maps" USING btree ("repo_id","pattern");--> statement-breakpoint
CREATE INDEX "test_cases_tags_gin" ON "test_cases" USING gin ("tags");--> statement-breakpoint
CREATE UNIQUE INDEX "users_email_lower_unique" ON "users" USING btree (lower("email")) WHERE "users"."email" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "github_installations_account_idx" ON "github_app_installations" USING btree ("account_id");--> statement-breakpoint
CREATE INDEX "github_installations_login_idx" ON "github_app_installations" USING btree ("account_login");--> statement-breakpoint
CREATE INDEX "github_installations_repository_ids_gin" ON "github_app_installations" USING gin ("repository_ids");--> statement-breakpoint
CREATE INDEX "dsr_events_request_created_idx" ON "data_subject_request_events" USING btree ("request_id","created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "dsr_user_requested_idx" ON "data_subject_requests" USING btree ("user_id","requested_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "dsr_open_due_idx" ON "data_subject_requests" USING btree ("due_at") WHERE "data_subject_requests"."status" <> 'completed';--> statement-breakpoint
CREATE INDEX "role_audit_logs_repo_created_idx" ON "role_audit_logs" USING btree ("repo_id","created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "role_audit_logs_target_idx" ON "role_audit_logs" USING btree ("target_user_id");--> statement-breakpoint
CREATE INDEX "role_audit_logs_actor_idx" ON "role_audit_logs" USING btree ("actor_id");--> statement-breakpoint
CREATE INDEX "user_repo_roles_repo_idx" ON "user_repo_roles" USING btree ("repo_id");--> statement-breakpoint
CREATE INDEX "user_repo_roles_role_idx" ON "user_repo_roles" USING btree ("role");--> statement-breakpoint
CREATE INDEX "audit_logs_subject_idx" ON "audit_logs" USING btree ("subject","subject_id");--> statement-breakpoint
CREATE INDEX "audit_logs_created_idx" ON "audit_logs" USING btree ("created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "audit_logs_action_created_idx" ON "audit_logs" USING btree ("action","created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "audit_logs_metadata_gin" ON "audit_logs" USING gin ("metadata" jsonb_path_ops);--> statement-breakpoint
CREATE INDEX "hmac_secrets_active_repo_idx" ON "hmac_secrets" USING btree ("repo_id") WHERE "hmac_secrets"."active" AND NOT "hmac_secrets"."revoked";--> statement-breakpoint
CREATE INDEX "hmac_secrets_sha256_idx" ON "hmac_secrets" USING btree ("secret_sha256");--> statement-breakpoint
CREATE INDEX "telemetry_events_type_time_idx" ON "telemetry_events" USING btree ("event_type","event_timestamp" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "telemetry_events_repo_idx" ON "telemetry_events" USING btree ("repo_id");--> statement-breakpoint
CREATE INDEX "telemetry_events_time_idx" ON "telemetry_events" USING btree ("event_timestamp" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "telemetry_events_data_gin" ON "telemetry_events" USING gin ("event_data" jsonb_path_ops);