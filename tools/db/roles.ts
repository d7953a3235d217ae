import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * The three roles of `../shared/spec/schema.md` and what each is for:
 *
 * - `anchorpipe_migrator` owns the schema's objects and runs every migration (`db:migrate`,
 *   `db:rollback`): the migrator switches to it for each migration, whoever connects.
 * - `anchorpipe_app` is what the Worker runs as: data, no DDL.
 * - `anchorpipe_readonly` is for dashboards and read replicas: SELECT only.
 *
 * Migration 0003 creates them without login rights (they are server-wide). Something that logs in
 * is granted one of them: locally, per-database login roles made here; in production, whatever the
 * README's deployment section says.
 */
export const ROLES = {
  migrator: "anchorpipe_migrator",
  app: "anchorpipe_app",
  readonly: "anchorpipe_readonly",
} as const;
export type RoleKey = keyof typeof ROLES;
export const ROLE_KEYS = Object.keys(ROLES) as RoleKey[];

type Queryable = Pick<pg.Pool | pg.ClientBase, "query">;

export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const quoteLiteral = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** The same as migration 0003's first step: each role, without login rights, if it is missing. */
export async function ensureGroupRoles(db: Queryable): Promise<void> {
  for (const role of Object.values(ROLES)) {
    const { rows } = await db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role]);
    if (rows.length > 0) continue;
    try {
      await db.query(`CREATE ROLE ${quoteIdent(role)} NOLOGIN`);
    } catch (error) {
      // Roles are server-wide: another run may have created it since we looked.
      const code = (error as { code?: string }).code;
      if (code !== "42710" && code !== "23505") throw error;
    }
  }
}

/**
 * Makes `anchorpipe_migrator` able to run the migrations of this database: it may create in (and grant
 * on) schema public, and it owns whatever is already there (databases migrated before it ran the
 * migrations). Each step is skipped when already true, so once done it needs no rights at all; the first
 * time it needs the owner of schema public or a superuser.
 */
export async function prepareMigrator(db: Queryable): Promise<void> {
  await ensureGroupRoles(db);
  // Row or no row rather than a boolean: callers' pools may parse types differently.
  const { rows } = await db.query(
    `SELECT 1 WHERE NOT (has_schema_privilege($1, 'public', 'CREATE WITH GRANT OPTION')
                     AND has_schema_privilege($1, 'public', 'USAGE WITH GRANT OPTION'))`,
    [ROLES.migrator],
  );
  if (rows.length > 0) {
    await db.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${ROLES.migrator} WITH GRANT OPTION`);
  }
  await adoptSchemaObjects(db);
}

/** Hands every object of schema public that anchorpipe_migrator does not own over to it. */
async function adoptSchemaObjects(db: Queryable): Promise<void> {
  const { rows } = await db.query(ADOPTABLE, [ROLES.migrator]);
  for (const { kind, name } of rows as { kind: string; name: string }[]) {
    await db.query(`ALTER ${kind} ${name} OWNER TO ${ROLES.migrator}`);
  }
}

// Tables (partitions included), views, sequences that are not owned by a column, functions and types
// of schema public; indexes and owned sequences follow their table.
const ADOPTABLE = `
  SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
           ELSE 'TABLE' END AS kind,
         format('%I.%I', n.nspname, c.relname) AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
    AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
    AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S')
  UNION ALL
  SELECT 'FUNCTION', p.oid::regprocedure::text
  FROM pg_proc p
  WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
  UNION ALL
  SELECT 'TYPE', format('%I.%I', 'public', t.typname)
  FROM pg_type t
  WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c')
    AND NOT EXISTS (SELECT FROM pg_class c WHERE c.reltype = t.oid AND c.relkind <> 'c')
    AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)`;

/** The prefix of `npm run dev`'s login roles on a server database: named after the database (roles are server-wide). */
export function devLoginPrefix(databaseUrl: string): string {
  const database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1)) || "postgres";
  return `anchorpipe_dev_${database.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 50);
}

/** Name of the login role for `role` in a set of logins made for one purpose (e.g. one test database). */
export const loginName = (prefix: string, key: RoleKey) => `${prefix}_${key}`;

/**
 * Login roles for one database, one per role: `<prefix>_migrator`, `<prefix>_app`, `<prefix>_readonly`,
 * each a member of its role only (so it cannot `SET ROLE` to another), with a new random password, and
 * English server messages by default (as Neon sends them). Made by an administrator (`adminUrl`: a
 * superuser, or a role with CREATEROLE and ADMIN on the three roles). Returns each role's direct
 * connection string to the database of `adminUrl`.
 */
export async function createLoginRoles(adminUrl: string, prefix: string): Promise<Map<string, string>> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  const logins = new Map<string, string>();
  try {
    await ensureGroupRoles(client);
    const superuser = (await client.query("SELECT 1 WHERE current_setting('is_superuser') = 'on'")).rows.length > 0;
    for (const key of ROLE_KEYS) {
      const login = loginName(prefix, key);
      const password = randomBytes(18).toString("base64url");
      const exists = (await client.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [login])).rows.length > 0;
      await client.query(
        exists
          ? `ALTER ROLE ${quoteIdent(login)} LOGIN PASSWORD ${quoteLiteral(password)}`
          : `CREATE ROLE ${quoteIdent(login)} LOGIN PASSWORD ${quoteLiteral(password)} IN ROLE ${ROLES[key]}`,
      );
      if (superuser) await client.query(`ALTER ROLE ${quoteIdent(login)} SET lc_messages = 'C'`);
      const url = new URL(adminUrl);
      url.username = encodeURIComponent(login);
      url.password = encodeURIComponent(password);
      logins.set(ROLES[key], url.toString());
    }
  } finally {
    await client.end();
  }
  return logins;
}

/** Drops the login roles made by `createLoginRoles` (after their database is gone: they own nothing). */
export async function dropLoginRoles(adminUrl: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (const key of ROLE_KEYS) await client.query(`DROP ROLE IF EXISTS ${quoteIdent(loginName(prefix, key))}`);
  } finally {
    await client.end();
  }
}
