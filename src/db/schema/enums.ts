import { pgEnum } from "drizzle-orm/pg-core";

export const repoVisibility = pgEnum("repo_visibility", ["public", "private"]);
/** JUnit `<error>` is stored as fail, with the failure kind kept in the run's metadata. */
export const testRunStatus = pgEnum("test_run_status", ["pass", "fail", "skip"]);
export const ownerSource = pgEnum("owner_source", ["CODEOWNERS", "manual", "heuristic"]);
export const notificationType = pgEnum("notification_type", [
  "flake_detected",
  "score_threshold_breach",
  "system_alert",
  "ci_integration",
  "other",
]);
export const notificationSeverity = pgEnum("notification_severity", ["info", "warning", "error", "critical"]);
export const dsrType = pgEnum("dsr_type", ["export", "deletion"]);
export const dsrStatus = pgEnum("dsr_status", ["pending", "processing", "completed", "failed", "rejected"]);
export const repoRole = pgEnum("repo_role", ["admin", "member", "read_only"]);
export const auditAction = pgEnum("audit_action", [
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
]);
export const auditSubject = pgEnum("audit_subject", [
  "user",
  "repo",
  "dsr",
  "configuration",
  "security",
  "session",
  "token",
  "system",
]);
export const flakeClass = pgEnum("flake_class", ["stable", "flaky", "highly_flaky", "broken", "suspect"]);
