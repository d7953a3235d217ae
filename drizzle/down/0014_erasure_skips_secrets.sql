CREATE OR REPLACE FUNCTION "anchorpipe_erase_user"(erased_id uuid, pseudonym text) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
DECLARE
  person users%ROWTYPE;
  needles text[];
  pattern text;
  target record;
  changed bigint;
  total bigint := 0;
BEGIN
  IF pseudonym IS NULL OR pseudonym !~ '^erased-[0-9a-f]{8,64}$' THEN
    RAISE EXCEPTION 'a pseudonym is erased-<hex>' USING ERRCODE = '22023';
  END IF;
  SELECT * INTO person FROM users WHERE id = erased_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no such user' USING ERRCODE = 'P0002';
  END IF;
  IF EXISTS (
    SELECT FROM user_repo_roles mine
    WHERE mine.user_id = erased_id AND mine.role = 'admin'
      AND NOT EXISTS (SELECT FROM user_repo_roles other
                      WHERE other.repo_id = mine.repo_id AND other.role = 'admin' AND other.user_id <> erased_id)
  ) THEN
    RAISE EXCEPTION 'the user is the sole admin of a repository' USING ERRCODE = 'AP409';
  END IF;

  -- Longest first, so an email is rewritten whole rather than the login it starts with.
  needles := ARRAY(
    SELECT DISTINCT ON (length(needle), needle) needle
    FROM unnest(ARRAY[person.email, person.github_login, person.name, person.github_id, erased_id::text]
                || ARRAY(SELECT provider_account_id FROM accounts WHERE user_id = erased_id)) AS needle
    WHERE needle IS NOT NULL AND length(needle) >= 3
    ORDER BY length(needle) DESC, needle
  );

  PERFORM set_config('anchorpipe.erasure', 'on', true);
  DELETE FROM sessions WHERE user_id = erased_id;
  DELETE FROM accounts WHERE user_id = erased_id;
  DELETE FROM user_repo_roles WHERE user_id = erased_id;
  DELETE FROM notifications WHERE user_id = erased_id;
  DELETE FROM telemetry_events WHERE user_id = erased_id;
  DELETE FROM verification_tokens WHERE lower(identifier) = ANY (ARRAY(SELECT lower(n) FROM unnest(needles) AS n));
  UPDATE data_subject_requests SET export_data = NULL WHERE user_id = erased_id AND export_data IS NOT NULL;
  UPDATE audit_logs SET ip_address = NULL, user_agent = NULL
    WHERE actor_id = erased_id AND (ip_address IS NOT NULL OR user_agent IS NOT NULL);
  UPDATE users SET github_id = NULL, github_login = NULL, email = NULL, name = pseudonym, preferences = NULL,
    last_login_at = NULL, telemetry_opt_in = false, is_platform_admin = false, deleted_at = coalesce(deleted_at, now())
    WHERE id = erased_id;

  IF cardinality(needles) > 0 THEN
    -- Each needle as a literal, bounded so that a login does not match inside a longer word.
    SELECT '(?<![[:alnum:]_.-])(' || string_agg(regexp_replace(needle, '([].^$*+?(){}|\\[-])', '\\\1', 'g'), '|')
           || ')(?![[:alnum:]_-])'
      INTO pattern FROM unnest(needles) AS needle;
    FOR target IN
      SELECT c.oid::regclass AS tbl, a.attname AS col, a.atttypid AS typ
      FROM pg_class c
      JOIN pg_namespace ns ON ns.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE ns.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND a.atttypid IN ('text'::regtype, 'character varying'::regtype, 'jsonb'::regtype, 'text[]'::regtype)
      ORDER BY 1, 2
    LOOP
      IF target.typ = 'jsonb'::regtype THEN
        EXECUTE format('UPDATE %s SET %I = anchorpipe_scrub_jsonb(%I, $1, $2) WHERE %I::text ~* $1',
                       target.tbl, target.col, target.col, target.col) USING pattern, pseudonym;
      ELSIF target.typ = 'text[]'::regtype THEN
        EXECUTE format('UPDATE %s SET %I = ARRAY(SELECT regexp_replace(item, $1, $2, ''gi'') FROM unnest(%I) '
                       'WITH ORDINALITY AS u(item, position) ORDER BY position) '
                       'WHERE array_to_string(%I, chr(31)) ~* $1',
                       target.tbl, target.col, target.col, target.col) USING pattern, pseudonym;
      ELSE
        EXECUTE format('UPDATE %s SET %I = regexp_replace(%I, $1, $2, ''gi'') WHERE %I ~* $1',
                       target.tbl, target.col, target.col, target.col) USING pattern, pseudonym;
      END IF;
      GET DIAGNOSTICS changed = ROW_COUNT;
      total := total + changed;
    END LOOP;
  END IF;
  PERFORM set_config('anchorpipe.erasure', '', true);
  RETURN total;
END;
$$;
