import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase } from "./db-support.ts";
import { ENUMS, TABLES } from "./schema-spec.ts";

const ON_DELETE: Record<string, string> = {
  a: "no action",
  r: "restrict",
  c: "cascade",
  n: "set null",
  d: "set default",
};

let database: TestDatabase;
const rows = async (text: string, values: unknown[] = []) =>
  (await database.backend.pool.query({ text, values })).rows as Record<string, string>[];

beforeAll(async () => {
  database = await migratedDatabase();
});
afterAll(() => database.drop());

describe("the live catalog after `db:migrate` matches spec/schema.md", () => {
  it("has exactly the spec's tables", async () => {
    const tables = await rows(`
      select relname from pg_class
      where relnamespace = 'public'::regnamespace and relkind in ('r', 'p') and not relispartition
        and relname <> 'anchorpipe_migrations'`);
    expect(tables.map((t) => t.relname).sort()).toEqual(Object.keys(TABLES).sort());
  });

  it("has exactly the spec's enums", async () => {
    const enums = await rows(`
      select t.typname, string_agg(e.enumlabel, ',' order by e.enumsortorder) as labels
      from pg_type t join pg_enum e on e.enumtypid = t.oid
      where t.typnamespace = 'public'::regnamespace group by t.typname`);
    expect(Object.fromEntries(enums.map((e) => [e.typname, e.labels.split(",")]))).toEqual(ENUMS);
  });

  describe.each(Object.entries(TABLES))("%s", (table, spec) => {
    it("columns: names, types, NOT NULL and defaults", async () => {
      const live = await rows(
        `select a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || case when a.attnotnull then '!' else '' end
           || coalesce(' = ' || pg_get_expr(d.adbin, d.adrelid), '') as col
         from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped`,
        [`public.${table}`],
      );
      const expected = spec.noId ? spec.columns : ["id uuid! = gen_random_uuid()", ...spec.columns];
      expect(live.map((c) => c.col).sort()).toEqual([...expected].sort());
    });

    it("foreign keys with their ON DELETE rules", async () => {
      const live = await rows(
        `select a.attname || ' → ' || ref.relname || '.' || ra.attname || ' ' || con.confdeltype::text as fk
         from pg_constraint con
         join pg_attribute a on a.attrelid = con.conrelid and a.attnum = con.conkey[1]
         join pg_class ref on ref.oid = con.confrelid
         join pg_attribute ra on ra.attrelid = con.confrelid and ra.attnum = con.confkey[1]
         where con.contype = 'f' and con.conrelid = $1::regclass`,
        [`public.${table}`],
      );
      const fks = live.map((r) => r.fk.replace(/ (\w)$/, (_, rule: string) => ` ${ON_DELETE[rule]}`));
      expect(fks.sort()).toEqual([...(spec.fks ?? [])].sort());
    });

    it("unique keys", async () => {
      const live = await rows(
        `select string_agg(pg_get_indexdef(i.indexrelid, k, true), ',' order by k) as cols
         from pg_index i, generate_series(1, i.indnkeyatts) k
         where i.indrelid = $1::regclass and i.indisunique
         group by i.indexrelid`,
        [`public.${table}`],
      );
      const uniques = live.map((r) => r.cols).filter((cols) => spec.noId || cols !== "id");
      expect(uniques.sort()).toEqual([...(spec.unique ?? [])].sort());
    });

    it("indexes", async () => {
      const live = (
        await rows("select pg_get_indexdef(indexrelid) as def from pg_index where indrelid = $1::regclass", [
          `public.${table}`,
        ])
      ).map((r) => r.def);
      for (const fragment of spec.indexes ?? []) {
        expect(
          live.some((def) => def.endsWith(fragment) || def.includes(`${fragment} WHERE`)),
          `${table}: no index ${fragment} in\n${live.join("\n")}`,
        ).toBe(true);
      }
    });

    it("checks", async () => {
      const live = (
        await rows(
          "select pg_get_constraintdef(oid) as def from pg_constraint where contype = 'c' and conrelid = $1::regclass",
          [`public.${table}`],
        )
      ).map((r) => r.def);
      for (const fragment of spec.checks ?? []) {
        expect(
          live.some((def) => def.includes(fragment)),
          `${table}: no check ${fragment} in\n${live.join("\n")}`,
        ).toBe(true);
      }
    });
  });
});
