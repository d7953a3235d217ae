DROP FUNCTION "anchorpipe_erase_user"(uuid, text);--> statement-breakpoint
DROP FUNCTION "anchorpipe_scrub_jsonb"(jsonb, text, text);--> statement-breakpoint
CREATE OR REPLACE FUNCTION "anchorpipe_reject_append_only_change"() RETURNS trigger
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
