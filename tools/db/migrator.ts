import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type pg from "pg";
import { prepareMigrator, ROLES } from "./roles.ts";

/**
 * Applies and rolls back the migrations in `drizzle/` over a direct
 * connection. drizzle-kit writes the up scripts and the journal; every
 * migration also has a hand-written down script in `drizzle/down/<tag>.sql`.
 * Each migration runs in its own transaction together with its bookkeeping
 * row, so a failure leaves the database exactly as it was before that step.
 *
 * Everything runs as `anchorpipe_migrator` (`SET LOCAL ROLE`), whoever
 * connects — a superuser, the database owner or a login role granted it — so
 * the migrator owns every object the migrations create, as schema.md says.
 * Before the first step `prepareMigrator` makes sure that role exists and may
 * create in schema public (only the first time does that need an owner or a
 * superuser).
 */

export const MIGRATIONS_TABLE = "anchorpipe_migrations";
export const DEFAULT_MIGRATIONS_DIR = path.resolve(import.meta.dirname, "../../drizzle");

export interface Migration {
  index: number;
  tag: string;
  up: string;
  down: string | null;
  hash: string;
}

export interface AppliedMigration {
  tag: string;
  hash: string;
  appliedAt: string;
}

type Queryable = Pick<pg.Pool | pg.PoolClient, "query">;

export function loadMigrations(dir = DEFAULT_MIGRATIONS_DIR): Migration[] {
  const journal = JSON.parse(readFileSync(path.join(dir, "meta/_journal.json"), "utf8")) as {
    entries: { idx: number; tag: string }[];
  };
  return journal.entries.map(({ idx, tag }) => {
    const up = readFileSync(path.join(dir, `${tag}.sql`), "utf8");
    const downPath = path.join(dir, "down", `${tag}.sql`);
    return {
      index: idx,
      tag,
      up,
      down: existsSync(downPath) ? readFileSync(downPath, "utf8") : null,
      hash: createHash("sha256").update(up).digest("hex"),
    };
  });
}

export class MigrationError extends Error {
  constructor(
    message: string,
    readonly tag?: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "MigrationError";
  }
}

async function ensureTable(db: Queryable): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
    tag text PRIMARY KEY,
    hash text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

/** Runs `work` in a transaction as anchorpipe_migrator. */
async function asMigrator<T>(db: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query("BEGIN");
    await client.query(`SET LOCAL ROLE ${ROLES.migrator}`);
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * A script may take rights from the migrator on every table (0003's down script revokes them from the
 * three roles); the owner gives itself back the ones on its bookkeeping table.
 */
async function keepBookkeeping(client: pg.PoolClient): Promise<void> {
  await client.query(`GRANT SELECT, INSERT, DELETE ON ${MIGRATIONS_TABLE} TO ${ROLES.migrator}`);
}

/** Makes sure anchorpipe_migrator can run the migrations, explaining what is missing when it cannot. */
async function prepare(db: pg.Pool): Promise<void> {
  try {
    await prepareMigrator(db);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new MigrationError(
      `${ROLES.migrator} cannot run the migrations here (${detail}). Connect once as the database owner or a ` +
        `superuser (it creates the role and lets it create in schema public), or grant ${ROLES.migrator} to the ` +
        "role you connect as.",
      undefined,
      error,
    );
  }
}

export async function appliedMigrations(db: pg.Pool): Promise<AppliedMigration[]> {
  return asMigrator(db, async (client) => {
    await ensureTable(client);
    const { rows } = await client.query(
      `SELECT tag, hash, applied_at::text AS "appliedAt" FROM ${MIGRATIONS_TABLE} ORDER BY tag`,
    );
    return rows as AppliedMigration[];
  });
}

/** drizzle-kit separates statements with this marker; the whole file runs as one script. */
function script(sql: string): string {
  return sql.replaceAll("--> statement-breakpoint", "");
}

async function inTransaction(db: pg.Pool, tag: string, work: (client: pg.PoolClient) => Promise<void>) {
  try {
    await asMigrator(db, work);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`migration ${tag} failed and was rolled back: ${detail}`, tag, error);
  }
}

function checkHistory(all: Migration[], applied: AppliedMigration[]): void {
  const known = new Map(all.map((m) => [m.tag, m]));
  for (const [i, row] of applied.entries()) {
    const migration = known.get(row.tag);
    if (!migration) throw new MigrationError(`the database has migration ${row.tag}, which is not in drizzle/`);
    if (migration.index !== i) throw new MigrationError(`applied migrations are out of order at ${row.tag}`);
    if (migration.hash !== row.hash) {
      throw new MigrationError(`migration ${row.tag} was changed after it was applied (hash mismatch)`, row.tag);
    }
  }
}

/** Applies every pending migration in order; returns the tags applied. */
export async function migrateUp(db: pg.Pool, all = loadMigrations()): Promise<string[]> {
  await prepare(db);
  const applied = await appliedMigrations(db);
  checkHistory(all, applied);
  const done: string[] = [];
  for (const migration of all.slice(applied.length)) {
    await inTransaction(db, migration.tag, async (client) => {
      await client.query(script(migration.up));
      await keepBookkeeping(client);
      await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (tag, hash) VALUES ($1, $2)`, [
        migration.tag,
        migration.hash,
      ]);
    });
    done.push(migration.tag);
  }
  return done;
}

export type RollbackTarget = { steps: number } | { to: string };

/**
 * Undoes the most recent migrations: `{ steps: N }`, or `{ to: tag }` to keep
 * `tag` and undo everything after it (`{ to: "0" }` empties the database).
 */
export async function migrateDown(db: pg.Pool, target: RollbackTarget, all = loadMigrations()): Promise<string[]> {
  await prepare(db);
  const applied = await appliedMigrations(db);
  checkHistory(all, applied);
  let count: number;
  if ("steps" in target) {
    count = Math.min(target.steps, applied.length);
  } else if (target.to === "0") {
    count = applied.length;
  } else {
    const keep = applied.findIndex((m) => m.tag === target.to);
    if (keep < 0) throw new MigrationError(`migration ${target.to} is not applied`);
    count = applied.length - keep - 1;
  }
  const undone: string[] = [];
  for (const row of applied.slice(applied.length - count).reverse()) {
    const migration = all.find((m) => m.tag === row.tag)!;
    if (migration.down === null) {
      throw new MigrationError(`migration ${row.tag} has no down script (drizzle/down/${row.tag}.sql)`, row.tag);
    }
    const down = migration.down;
    await inTransaction(db, row.tag, async (client) => {
      await client.query(script(down));
      await keepBookkeeping(client);
      await client.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE tag = $1`, [row.tag]);
    });
    undone.push(row.tag);
  }
  return undone;
}

export interface MigrationStatus {
  tag: string;
  state: "applied" | "pending";
  appliedAt: string | null;
  hasDown: boolean;
}

export async function migrationStatus(db: pg.Pool, all = loadMigrations()): Promise<MigrationStatus[]> {
  await prepare(db);
  const applied = new Map((await appliedMigrations(db)).map((m) => [m.tag, m]));
  return all.map((m) => ({
    tag: m.tag,
    state: applied.has(m.tag) ? "applied" : "pending",
    appliedAt: applied.get(m.tag)?.appliedAt ?? null,
    hasDown: m.down !== null,
  }));
}
