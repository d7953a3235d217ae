import type pg from "pg";

/**
 * A comparable description of everything the migrations create in the public
 * schema: tables and partitions, columns, types, defaults, constraints,
 * indexes, triggers, functions, enums and privileges. Privileges are
 * normalised (an explicit ACL equal to the default compares equal to none),
 * and the migrator's bookkeeping table is left out.
 */
export type CatalogSnapshot = Record<string, string[]>;

const QUERIES: Record<string, string> = {
  relations: `
    select c.relname || ' ' || c.relkind::text
      || coalesce(' partition-of ' || parent.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), '')
      || coalesce(' partitioned ' || pg_get_partkeydef(c.oid), '')
    from pg_class c
    left join pg_inherits i on i.inhrelid = c.oid and c.relispartition
    left join pg_class parent on parent.oid = i.inhparent
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
      and c.relname <> 'anchorpipe_migrations'`,
  columns: `
    select c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
      || case when a.attnotnull then ' not null' else '' end
      || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and a.attnum > 0 and not a.attisdropped and c.relname <> 'anchorpipe_migrations'`,
  constraints: `
    select c.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
    from pg_constraint con join pg_class c on c.oid = con.conrelid
    where c.relnamespace = 'public'::regnamespace and c.relname <> 'anchorpipe_migrations'`,
  indexes: `
    select pg_get_indexdef(i.indexrelid)
    from pg_index i join pg_class c on c.oid = i.indrelid
    where c.relnamespace = 'public'::regnamespace and c.relname <> 'anchorpipe_migrations'`,
  triggers: `
    select c.relname || ' ' || pg_get_triggerdef(t.oid)
    from pg_trigger t join pg_class c on c.oid = t.tgrelid
    where c.relnamespace = 'public'::regnamespace and not t.tgisinternal`,
  functions: `
    select p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
      || case when p.prosecdef then 'security definer ' else '' end || md5(p.prosrc)
    from pg_proc p where p.pronamespace = 'public'::regnamespace`,
  types: `
    select t.typname || ' ' || t.typtype::text || coalesce(' ' || (
      select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid), '')
    from pg_type t
    where t.typnamespace = 'public'::regnamespace and t.typtype in ('e', 'd', 'c')
      and not exists (select from pg_class c where c.reltype = t.oid)`,
  tableGrants: `
    select c.relname || ' ' || coalesce(r.rolname, 'PUBLIC') || ' ' || a.privilege_type
    from pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
    left join pg_roles r on r.oid = a.grantee
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and c.relname <> 'anchorpipe_migrations' and a.grantee <> c.relowner`,
  functionGrants: `
    select p.proname || ' ' || coalesce(r.rolname, 'PUBLIC') || ' ' || a.privilege_type
    from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
    left join pg_roles r on r.oid = a.grantee
    where p.pronamespace = 'public'::regnamespace and a.grantee <> p.proowner`,
  schemaGrants: `
    select coalesce(r.rolname, 'PUBLIC') || ' ' || a.privilege_type
    from pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
    left join pg_roles r on r.oid = a.grantee
    where n.nspname = 'public' and a.grantee <> n.nspowner`,
  defaultGrants: `
    select d.defaclobjtype::text || ' ' || coalesce(r.rolname, 'PUBLIC') || ' ' || a.privilege_type
    from pg_default_acl d, aclexplode(d.defaclacl) a
    left join pg_roles r on r.oid = a.grantee
    where d.defaclnamespace = 'public'::regnamespace`,
};

export async function catalogSnapshot(db: Pick<pg.Pool, "query">): Promise<CatalogSnapshot> {
  const snapshot: CatalogSnapshot = {};
  for (const [part, query] of Object.entries(QUERIES)) {
    const { rows } = await db.query({ text: query, rowMode: "array" });
    snapshot[part] = rows.map((row: unknown[]) => String(row[0])).sort();
  }
  return snapshot;
}
