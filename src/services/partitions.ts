import { sql } from "drizzle-orm";
import type { Db } from "../db/client";

/**
 * Upkeep of test_runs' monthly partitions, through the SECURITY DEFINER
 * functions of migration 0002 so the application role needs no DDL rights.
 * Every function here is idempotent: running the job twice changes nothing.
 */

export interface PartitionUpkeep {
  /** Partitions created by this call (none when they already existed). */
  created: string[];
  /** Rows in test_runs_default, which should stay empty: > 0 is unhealthy. */
  defaultPartitionRows: number;
}

/** Makes sure the partitions from `from`'s month through `monthsAhead` months later exist. */
export async function ensureTestRunPartitions(db: Db, monthsAhead = 2, from = new Date()): Promise<PartitionUpkeep> {
  const month = from.toISOString().slice(0, 10);
  const [created, defaultRows] = await db.batch([
    db.execute<{ name: string }>(
      sql`select anchorpipe_ensure_test_run_partitions(${monthsAhead}::int, ${month}::date) as name`,
    ),
    db.execute<{ rows: number }>(sql`select count(*)::int as rows from test_runs_default`),
  ]);
  return {
    created: created.rows.map((r) => r.name),
    defaultPartitionRows: defaultRows.rows[0].rows,
  };
}

/** Drops whole monthly partitions that end on or before `cutoff` (retention). Returns their names. */
export async function dropTestRunPartitionsBefore(db: Db, cutoff: Date): Promise<string[]> {
  const result = await db.execute<{ name: string }>(
    sql`select anchorpipe_drop_test_run_partitions_before(${cutoff.toISOString()}::timestamptz) as name`,
  );
  return result.rows.map((r) => r.name);
}

export interface PartitionInfo {
  name: string;
  /** Inclusive lower bound; null for the default partition. */
  from: string | null;
  to: string | null;
}

/** test_runs' partitions, oldest first, the default partition last. */
export async function listTestRunPartitions(db: Db): Promise<PartitionInfo[]> {
  const result = await db.execute<{ name: string; bound: string }>(sql`
    select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.test_runs'::regclass
    order by c.relname`);
  const partitions = result.rows.map(({ name, bound }) => {
    const [, from, to] = /FROM \('([^']+)'\) TO \('([^']+)'\)/.exec(bound) ?? [];
    return { name, from: from ?? null, to: to ?? null };
  });
  return [...partitions.filter((p) => p.from), ...partitions.filter((p) => !p.from)];
}
