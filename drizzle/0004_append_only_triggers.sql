-- Append-only history: audit_logs, role_audit_logs and data_subject_request_events reject UPDATE, DELETE
-- and TRUNCATE from everyone, the owner included. Three things may still change them:
--   * ON DELETE SET NULL from a deleted user or repo: the history stays, with a null reference;
--   * ON DELETE CASCADE from a deleted data subject request (its timeline goes with it);
--   * the retention purge, through anchorpipe_purge_append_only() only.
CREATE FUNCTION "anchorpipe_reject_append_only_change"() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  -- Trigger arguments: the reference columns a parent's deletion may set to NULL.
  nullable_refs text[] := TG_ARGV;
  purge_before text := current_setting('anchorpipe.purge_before', true);
BEGIN
  IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
     AND (to_jsonb(NEW) - nullable_refs) = (to_jsonb(OLD) - nullable_refs)
     AND NOT EXISTS (
       SELECT FROM unnest(nullable_refs) AS ref
       WHERE to_jsonb(NEW) -> ref <> 'null'::jsonb AND to_jsonb(NEW) -> ref IS DISTINCT FROM to_jsonb(OLD) -> ref
     ) THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'data_subject_request_events' AND pg_trigger_depth() > 1 THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'DELETE' AND coalesce(purge_before, '') <> '' AND OLD.created_at < purge_before::timestamptz THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege', HINT = 'History is never changed; retention uses anchorpipe_purge_append_only().';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER "audit_logs_append_only" BEFORE UPDATE OR DELETE ON "audit_logs"
  FOR EACH ROW EXECUTE FUNCTION "anchorpipe_reject_append_only_change"('actor_id');--> statement-breakpoint
CREATE TRIGGER "audit_logs_no_truncate" BEFORE TRUNCATE ON "audit_logs"
  FOR EACH STATEMENT EXECUTE FUNCTION "anchorpipe_reject_append_only_change"();--> statement-breakpoint
CREATE TRIGGER "role_audit_logs_append_only" BEFORE UPDATE OR DELETE ON "role_audit_logs"
  FOR EACH ROW EXECUTE FUNCTION "anchorpipe_reject_append_only_change"('actor_id', 'target_user_id', 'repo_id');--> statement-breakpoint
CREATE TRIGGER "role_audit_logs_no_truncate" BEFORE TRUNCATE ON "role_audit_logs"
  FOR EACH STATEMENT EXECUTE FUNCTION "anchorpipe_reject_append_only_change"();--> statement-breakpoint
CREATE TRIGGER "dsr_events_append_only" BEFORE UPDATE OR DELETE ON "data_subject_request_events"
  FOR EACH ROW EXECUTE FUNCTION "anchorpipe_reject_append_only_change"();--> statement-breakpoint
CREATE TRIGGER "dsr_events_no_truncate" BEFORE TRUNCATE ON "data_subject_request_events"
  FOR EACH STATEMENT EXECUTE FUNCTION "anchorpipe_reject_append_only_change"();--> statement-breakpoint
-- The one way to delete history: rows older than `before`, from one of the append-only tables.
CREATE FUNCTION "anchorpipe_purge_append_only"(target regclass, before timestamptz) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
DECLARE
  purged bigint;
BEGIN
  IF target NOT IN ('public.audit_logs'::regclass, 'public.role_audit_logs'::regclass,
                    'public.data_subject_request_events'::regclass) THEN
    RAISE EXCEPTION '% is not an append-only table', target USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('anchorpipe.purge_before', before::text, true);
  EXECUTE format('DELETE FROM %s WHERE created_at < $1', target) USING before;
  GET DIAGNOSTICS purged = ROW_COUNT;
  PERFORM set_config('anchorpipe.purge_before', '', true);
  RETURN purged;
END;
$$;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION "anchorpipe_purge_append_only"(regclass, timestamptz) FROM PUBLIC;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION "anchorpipe_purge_append_only"(regclass, timestamptz) TO anchorpipe_app, anchorpipe_migrator;
