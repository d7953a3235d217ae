import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrateDown, migrateUp } from "../../tools/db/migrator.ts";
import { ROLES } from "../../tools/db/roles.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";
import { createEmbeddedBackend } from "../../tools/gateway/backends.ts";

/**
 * anchorpipe_migrator owns the schema's objects (schema.md) and every migration runs as it: whoever
 * connects, the migrator switches to it, and a login role that is only granted anchorpipe_migrator
 * (no superuser) can run `db:migrate` and `db:rollback` on a server.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
const run = promisify(execFile);

const OWNERS = `
  select distinct pg_get_userbyid(owner)::text as owner from (
    select relowner as owner from pg_class where relnamespace = 'public'::regnamespace
    union all select proowner from pg_proc where pronamespace = 'public'::regnamespace
    union all select typowner from pg_type where typnamespace = 'public'::regnamespace) o`;

const owners = async (db: Pick<pg.Pool, "query">) =>
  (await db.query(OWNERS)).rows.map((r: { owner: string }) => r.owner).sort();

const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const database of databases) await database.drop();
});

describe("migrations run as anchorpipe_migrator", () => {
  it("it owns everything they create, and what was there before", async () => {
    const database = await createTestDatabase();
    databases.push(database);
    const { pool } = database.backend;
    // Created by the administrator before the migrator ran anything (a database migrated the old way).
    await pool.query("create table adopted_by_migrator (n int)");
    await migrateUp(pool);
    expect(await owners(pool)).toEqual([ROLES.migrator]);
    expect((await pool.query("select to_regclass('public.adopted_by_migrator') is not null as there")).rows).toEqual([
      { there: "t" },
    ]);
    await migrateDown(pool, { to: "0" });
    const left = await pool.query(
      "select count(*)::text as n from pg_class where relnamespace = 'public'::regnamespace and relname like 'test_runs%'",
    );
    expect(left.rows[0].n).toBe("0");
  });

  it("db:migrate and db:rollback work for a login role that is only granted anchorpipe_migrator", async () => {
    const database = await createTestDatabase();
    databases.push(database);
    const dataDir = mkdtempSync(path.join(tmpdir(), "anchorpipe-migrate-"));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, ANCHORPIPE_DATA_DIR: dataDir };
      // On a server: this database's migrator login (no superuser). Embedded: a scratch dev folder.
      if (database.logins) env.DATABASE_URL = database.logins.get(ROLES.migrator);
      else delete env.DATABASE_URL;
      const cli = (...args: string[]) =>
        run(path.join(ROOT, "node_modules/.bin/tsx"), ["tools/db/migrate-cli.ts", ...args], { cwd: ROOT, env });

      const up = await cli("up");
      expect(up.stdout).toMatch(/applied {2}0000_repos/);
      const check = async () => {
        if (database.logins) {
          const client = new pg.Client({ connectionString: env.DATABASE_URL });
          await client.connect();
          try {
            const { rows } = await client.query("select current_setting('is_superuser') as su");
            expect(rows[0].su).toBe("off");
            return await owners(client);
          } finally {
            await client.end();
          }
        }
        const embedded = await createEmbeddedBackend({ dataDir: path.join(dataDir, "pglite") });
        try {
          return await owners(embedded.pool);
        } finally {
          await embedded.close();
        }
      };
      expect(await check()).toEqual([ROLES.migrator]);
      const down = await cli("down", "--to", "0");
      expect(down.stdout).toMatch(/reverted 0000_repos/);
      expect((await cli("status")).stdout).toMatch(/^pending +0000_repos/m);

      if (database.logins) {
        // The Worker's login may not: it cannot become the migrator.
        const refused = await run(path.join(ROOT, "node_modules/.bin/tsx"), ["tools/db/migrate-cli.ts", "up"], {
          cwd: ROOT,
          env: { ...env, DATABASE_URL: database.logins.get(ROLES.app) },
        }).catch((e: { code: number; stderr: string; stdout: string }) => e);
        expect((refused as { code: number }).code).toBe(1);
        expect(JSON.stringify(refused)).toMatch(/permission denied to set role|anchorpipe_migrator/);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
