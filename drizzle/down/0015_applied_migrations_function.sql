DROP FUNCTION "anchorpipe_applied_migrations"();
