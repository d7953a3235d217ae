/**
 * The schema as ../shared/spec/schema.md states it, written down table by
 * table so a test can compare it with the live catalog after the migrations.
 *
 * Column: "name type" with `!` for NOT NULL and `= default` for a default the
 * spec names. Types are PostgreSQL's own names (format_type). Every table
 * also has `id uuid! = gen_random_uuid()` unless it says `noId`.
 * Foreign keys: "column → table.column on-delete". Unique: column lists
 * (constraint or unique index). Indexes: fragments of pg_get_indexdef.
 */
export interface TableSpec {
  columns: string[];
  fks?: string[];
  unique?: string[];
  indexes?: string[];
  checks?: string[];
  noId?: boolean;
}

const TS = "timestamp with time zone";

export const ENUMS: Record<string, string[]> = {
  repo_visibility: ["public", "private"],
  test_run_status: ["pass", "fail", "skip"],
  owner_source: ["CODEOWNERS", "manual", "heuristic"],
  notification_type: ["flake_detected", "score_threshold_breach", "system_alert", "ci_integration", "other"],
  notification_severity: ["info", "warning", "error", "critical"],
  dsr_type: ["export", "deletion"],
  dsr_status: ["pending", "processing", "completed", "failed", "rejected"],
  repo_role: ["admin", "member", "read_only"],
  audit_action: [
    "login_success",
    "login_failure",
    "user_created",
    "role_assigned",
    "role_removed",
    "dsr_export_request",
    "dsr_export_download",
    "dsr_deletion_request",
    "config_updated",
    "token_created",
    "token_revoked",
    "hmac_auth_success",
    "hmac_auth_failure",
    "hmac_secret_created",
    "hmac_secret_revoked",
    "hmac_secret_rotated",
    "ingestion_accepted",
    "ingestion_rejected",
    "retention_purge",
    "other",
  ],
  audit_subject: ["user", "repo", "dsr", "configuration", "security", "session", "token", "system"],
  // The scoring model uses `broken` and `suspect` (spec: "plus broken / suspect if the scoring model uses them").
  flake_class: ["stable", "flaky", "highly_flaky", "broken", "suspect"],
};

export const TABLES: Record<string, TableSpec> = {
  repos: {
    columns: [
      "gh_id bigint",
      "name text!",
      "owner text!",
      "default_branch text! = 'main'::text",
      "visibility repo_visibility! = 'public'::repo_visibility",
      "config jsonb",
      `created_at ${TS}! = now()`,
      `updated_at ${TS}! = now()`,
    ],
    unique: ["gh_id", "owner,name"],
  },
  users: {
    columns: [
      "github_id text",
      "github_login text",
      "email text",
      "name text",
      `created_at ${TS}! = now()`,
      `last_login_at ${TS}`,
      "telemetry_opt_in boolean! = false",
      "preferences jsonb",
      `deleted_at ${TS}`,
      // spec/api.md, "Platform admins" (migration 0007).
      "is_platform_admin boolean! = false",
    ],
    unique: ["github_id", "lower(email)"],
  },
  test_cases: {
    columns: [
      "repo_id uuid!",
      "path text!",
      "name text!",
      "framework text! = 'unknown'::text",
      "suite text",
      "tags text[]! = '{}'::text[]",
      "description text",
      "last_failure_reason text",
      `first_seen_at ${TS}! = now()`,
      `last_seen_at ${TS}! = now()`,
      `created_at ${TS}! = now()`,
      `updated_at ${TS}! = now()`,
    ],
    fks: ["repo_id → repos.id cascade"],
    unique: ["repo_id,path,name,framework"],
    // Beyond schema.md: the path_prefix of the tests list (migration 0008).
    indexes: ["USING gin (tags)", "(repo_id, path text_pattern_ops)"],
    checks: ["char_length(path) <= 1000", "char_length(name) <= 1000"],
  },
  test_runs: {
    noId: true,
    columns: [
      "id uuid! = gen_random_uuid()",
      "repo_id uuid!",
      "test_case_id uuid!",
      "ingestion_id uuid!",
      "commit_sha character(40)!",
      "branch text",
      "pull_request text",
      "run_id text!",
      "status test_run_status!",
      "duration_ms integer",
      `started_at ${TS}!`,
      "rerun_count integer! = 0",
      "failure_details text",
      "environment_hash text",
      "metadata jsonb",
      `created_at ${TS}! = now()`,
    ],
    fks: ["repo_id → repos.id cascade", "test_case_id → test_cases.id cascade", "ingestion_id → ingestions.id cascade"],
    unique: ["id,created_at"],
    indexes: [
      "(test_case_id, started_at DESC)",
      "(repo_id, started_at DESC)",
      "(repo_id, commit_sha)",
      "(environment_hash)",
    ],
    checks: ["duration_ms >= 0", "rerun_count >= 0", "commit_sha ~ '^[0-9a-f]{40}$'"],
  },
  ingestions: {
    columns: [
      "repo_id uuid!",
      "idempotency_key text!",
      "commit_sha text!",
      "run_id text!",
      "framework text!",
      "branch text",
      "pull_request text",
      "environment jsonb",
      "environment_hash text",
      "signature_scheme text!",
      "tests_total integer!",
      "tests_failed integer!",
      "tests_skipped integer!",
      "payload_sha256 text!",
      "response jsonb!",
      `received_at ${TS}! = now()`,
      `completed_at ${TS}`,
    ],
    fks: ["repo_id → repos.id cascade"],
    unique: ["repo_id,idempotency_key"],
    // Beyond schema.md: the uploads list, newest first (migration 0008).
    indexes: ["(repo_id, received_at DESC, id DESC) WHERE (completed_at IS NOT NULL)"],
  },
  flake_scores: {
    columns: [
      "test_case_id uuid!",
      "repo_id uuid!",
      "window_n integer! = 50",
      "runs_considered integer!",
      "pass_rate real!",
      "volatility real!",
      "recency_fail real!",
      "clustering real!",
      "score smallint!",
      "class flake_class! = 'stable'::flake_class",
      `first_flaky_at ${TS}`,
      `last_flaky_at ${TS}`,
      "ml_prediction_data jsonb",
      `updated_at ${TS}! = now()`,
    ],
    fks: ["test_case_id → test_cases.id cascade", "repo_id → repos.id cascade"],
    unique: ["test_case_id"],
    indexes: [
      "(repo_id, score DESC)",
      "(repo_id, score DESC) WHERE (score >= 60)",
      // Beyond schema.md: the rows at rest, which an upload's scoring skips (migration 0018).
      "(repo_id, test_case_id) WHERE ((class = 'stable'::flake_class) AND (pass_rate = (1)::double precision) AND (recency_fail = (0)::double precision))",
    ],
    checks: ["score >= 0", "score <= 100"],
  },
  owner_maps: {
    columns: [
      "repo_id uuid!",
      "pattern text!",
      "owner text!",
      "source owner_source! = 'manual'::owner_source",
      "line integer",
      "confidence_score real",
      `created_at ${TS}! = now()`,
      "path_regex text",
      "path_literal text",
    ],
    fks: ["repo_id → repos.id cascade"],
    indexes: ["(repo_id, pattern)"],
  },
  telemetry_events: {
    columns: ["repo_id uuid", "user_id uuid", "event_type text!", "event_data jsonb", `event_timestamp ${TS}! = now()`],
    fks: ["repo_id → repos.id set null", "user_id → users.id set null"],
    indexes: [
      "(event_type, event_timestamp DESC)",
      "(repo_id)",
      "(event_timestamp DESC)",
      "USING gin (event_data jsonb_path_ops)",
    ],
  },
  repository_configs: {
    columns: [
      "repo_id uuid!",
      "config jsonb! = '{}'::jsonb",
      "retention_days integer! = 30",
      "scoring_threshold smallint! = 60",
      "require_timestamped_signature boolean! = false",
      `created_at ${TS}! = now()`,
      `updated_at ${TS}! = now()`,
    ],
    fks: ["repo_id → repos.id cascade"],
    unique: ["repo_id"],
    checks: ["retention_days >= 1", "retention_days <= 3650", "scoring_threshold >= 0", "scoring_threshold <= 100"],
  },
  notifications: {
    columns: [
      "repo_id uuid",
      "user_id uuid",
      "type notification_type!",
      "title text!",
      "message text!",
      "severity notification_severity! = 'info'::notification_severity",
      "read boolean! = false",
      "action_url text",
      "metadata jsonb",
      `created_at ${TS}! = now()`,
      `read_at ${TS}`,
    ],
    fks: ["repo_id → repos.id cascade", "user_id → users.id cascade"],
    indexes: ["(repo_id, created_at DESC)", "(user_id, read, created_at DESC)"],
  },
  accounts: {
    columns: [
      "user_id uuid!",
      "provider text!",
      "provider_account_id text!",
      "access_token text",
      "refresh_token text",
      "token_type text",
      "scope text",
      "expires_at integer",
    ],
    fks: ["user_id → users.id cascade"],
    unique: ["provider,provider_account_id"],
    indexes: ["(user_id)"],
  },
  sessions: {
    columns: [
      "user_id uuid!",
      "session_token text!",
      `expires ${TS}!`,
      `created_at ${TS}! = now()`,
      `last_used_at ${TS}`,
    ],
    fks: ["user_id → users.id cascade"],
    unique: ["session_token"],
    indexes: ["(user_id)", "(expires)"],
  },
  verification_tokens: {
    columns: ["identifier text!", "token text!", `expires ${TS}!`],
    unique: ["token", "identifier,token"],
  },
  user_repo_roles: {
    columns: [
      "user_id uuid!",
      "repo_id uuid!",
      "role repo_role!",
      "assigned_by uuid",
      `created_at ${TS}! = now()`,
      `updated_at ${TS}! = now()`,
    ],
    fks: ["user_id → users.id cascade", "repo_id → repos.id cascade", "assigned_by → users.id set null"],
    unique: ["user_id,repo_id"],
    indexes: ["(repo_id)", "(role)"],
  },
  role_audit_logs: {
    columns: [
      "actor_id uuid",
      "target_user_id uuid",
      "repo_id uuid",
      "action text!",
      "old_role repo_role",
      "new_role repo_role",
      "metadata jsonb",
      `created_at ${TS}! = now()`,
    ],
    fks: ["actor_id → users.id set null", "target_user_id → users.id set null", "repo_id → repos.id set null"],
    indexes: ["(repo_id, created_at DESC)", "(target_user_id)", "(actor_id)"],
  },
  audit_logs: {
    columns: [
      "actor_id uuid",
      "action audit_action!",
      "subject audit_subject!",
      "subject_id text",
      "description text",
      "metadata jsonb",
      "ip_address inet",
      "user_agent text",
      "request_id text",
      `created_at ${TS}! = now()`,
    ],
    fks: ["actor_id → users.id set null"],
    indexes: [
      "(subject, subject_id)",
      "(created_at DESC)",
      "(action, created_at DESC)",
      "USING gin (metadata jsonb_path_ops)",
      // Beyond schema.md: a repository's audit log by action (migration 0008).
      "(subject_id, action, created_at DESC, id DESC)",
    ],
  },
  hmac_secrets: {
    columns: [
      "repo_id uuid!",
      "name text!",
      "key_id text!",
      "secret_ciphertext text!",
      "kek_version smallint!",
      "secret_sha256 text!",
      "active boolean! = true",
      "revoked boolean! = false",
      `last_used_at ${TS}`,
      "rotated_from uuid",
      "created_by uuid",
      `created_at ${TS}! = now()`,
      `revoked_at ${TS}`,
      `expires_at ${TS}`,
    ],
    fks: ["repo_id → repos.id cascade", "rotated_from → hmac_secrets.id set null", "created_by → users.id set null"],
    indexes: ["(repo_id) WHERE (active AND (NOT revoked))", "(secret_sha256)"],
  },
  // Not in schema.md: added by migration 0006 for the aggregated authentication-failure audit (ADR 0005).
  auth_failure_tallies: {
    noId: true,
    columns: ["subject_id text!", "reason text!", `window_start ${TS}!`, "failures integer! = 1", `last_at ${TS}!`],
    unique: ["subject_id,reason,window_start"],
    indexes: ["(window_start)"],
  },
  // Not in schema.md's tables (architecture.md names it): added by migration 0011, the scheduled jobs' ledger.
  job_runs: {
    columns: [
      "job text!",
      `scheduled_at ${TS}!`,
      `started_at ${TS}! = now()`,
      `finished_at ${TS}`,
      "outcome text!",
      "counts jsonb",
      "error text",
      `lease_until ${TS}`,
      `created_at ${TS}! = now()`,
    ],
    unique: ["job", "job,scheduled_at"],
    indexes: [
      "(job) WHERE (outcome = 'running'::text)",
      "(job, finished_at DESC) WHERE (outcome = 'succeeded'::text)",
      "(job, started_at DESC)",
    ],
    checks: ["'running'::text, 'succeeded'::text, 'failed'::text, 'skipped'::text", "finished_at IS NULL"],
  },
  data_subject_requests: {
    columns: [
      "user_id uuid!",
      "type dsr_type!",
      "status dsr_status! = 'pending'::dsr_status",
      `requested_at ${TS}! = now()`,
      `due_at ${TS}! = (now() + '30 days'::interval)`,
      `processed_at ${TS}`,
      `confirmation_sent_at ${TS}`,
      "export_data jsonb",
      "metadata jsonb",
    ],
    fks: ["user_id → users.id cascade"],
    indexes: ["(user_id, requested_at DESC)", "(due_at) WHERE (status <> 'completed'::dsr_status)"],
  },
  data_subject_request_events: {
    columns: ["request_id uuid!", "status dsr_status!", "message text", `created_at ${TS}! = now()`],
    fks: ["request_id → data_subject_requests.id cascade"],
    indexes: ["(request_id, created_at DESC)"],
  },
  github_app_installations: {
    columns: [
      "installation_id bigint!",
      "account_id bigint!",
      "account_type text!",
      "account_login text!",
      "target_type text!",
      "target_id bigint",
      "repository_ids bigint[]! = '{}'::bigint[]",
      "permissions jsonb! = '{}'::jsonb",
      "events text[]! = '{}'::text[]",
      `suspended_at ${TS}`,
      "suspended_by text",
      "suspended_reason text",
      `created_at ${TS}! = now()`,
      `updated_at ${TS}! = now()`,
    ],
    unique: ["installation_id"],
    indexes: ["(account_id)", "(account_login)", "USING gin (repository_ids)"],
  },
};

/** Tables that keep history and may only grow. */
export const APPEND_ONLY = ["audit_logs", "role_audit_logs", "data_subject_request_events"];
