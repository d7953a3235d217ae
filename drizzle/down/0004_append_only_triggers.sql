DROP FUNCTION "anchorpipe_purge_append_only"(regclass, timestamptz);--> statement-breakpoint
DROP TRIGGER "dsr_events_no_truncate" ON "data_subject_request_events";--> statement-breakpoint
DROP TRIGGER "dsr_events_append_only" ON "data_subject_request_events";--> statement-breakpoint
DROP TRIGGER "role_audit_logs_no_truncate" ON "role_audit_logs";--> statement-breakpoint
DROP TRIGGER "role_audit_logs_append_only" ON "role_audit_logs";--> statement-breakpoint
DROP TRIGGER "audit_logs_no_truncate" ON "audit_logs";--> statement-breakpoint
DROP TRIGGER "audit_logs_append_only" ON "audit_logs";--> statement-breakpoint
DROP FUNCTION "anchorpipe_reject_append_only_change"();
