-- GET /api/health compares the migrations applied with those the Worker was built for. The ledger belongs to
-- anchorpipe_migrator and 0003 revokes it from the Worker's roles; this function lets them read the tags and
-- nothing else, with its owner's rights.
CREATE FUNCTION "anchorpipe_applied_migrations"() RETURNS SETOF text
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, public
AS $$ SELECT tag FROM public.anchorpipe_migrations ORDER BY tag $$;--> statement-breakpoint
REVOKE ALL ON FUNCTION "anchorpipe_applied_migrations"() FROM PUBLIC;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION "anchorpipe_applied_migrations"() TO anchorpipe_app, anchorpipe_readonly;
