import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appliedMigrations,
  loadMigrations,
  MigrationError,
  migrateDown,
  migrateUp,
  migrationStatus,
} from "../../tools/db/migrator.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";
import { type CatalogSnapshot, catalogSnapshot } from "./catalog.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

describe("migration round trip", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database.drop());

  it("every step down restores the catalog of the same step on the way up, and up again matches", async () => {
    const { pool } = database.backend;
    const all = loadMigrations();
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.every((m) => m.down !== null)).toBe(true);

    const up: CatalogSnapshot[] = [await catalogSnapshot(pool)];
    for (let i = 1; i <= all.length; i++) {
      expect(await migrateUp(pool, all.slice(0, i))).toEqual([all[i - 1].tag]);
      up.push(await catalogSnapshot(pool));
      expect(up[i], `migration ${all[i - 1].tag} changed nothing`).not.toEqual(up[i - 1]);
    }
    for (let i = all.length - 1; i >= 0; i--) {
      expect(await migrateDown(pool, { steps: 1 }, all)).toEqual([all[i].tag]);
      expect(await catalogSnapshot(pool), `after rolling back ${all[i].tag}`).toEqual(up[i]);
    }
    expect(await appliedMigrations(pool)).toEqual([]);
    await migrateUp(pool, all);
    expect(await catalogSnapshot(pool)).toEqual(up[all.length]);
  });

  it("rolls back to a tag, reports status, and refuses what it cannot do", async () => {
    const { pool } = database.backend;
    const all = loadMigrations();
    await migrateUp(pool, all);
    expect(await migrateDown(pool, { to: all[2].tag }, all)).toEqual(
      all
        .slice(3)
        .map((m) => m.tag)
        .reverse(),
    );
    const status = await migrationStatus(pool, all);
    expect(status.map((s) => s.state)).toEqual(all.map((_, i) => (i <= 2 ? "applied" : "pending")));
    expect(status.every((s) => s.hasDown)).toBe(true);
    await expect(migrateDown(pool, { to: "9999_nope" }, all)).rejects.toThrow(MigrationError);
    await migrateUp(pool, all);
  });

  it("a failing migration is rolled back whole and named in the error", async () => {
    const { pool } = database.backend;
    const all = loadMigrations();
    await migrateUp(pool, all);
    const before = await catalogSnapshot(pool);
    const broken = {
      index: all.length,
      tag: "9999_broken",
      up: 'CREATE TABLE "half_done" (n int);--> statement-breakpoint\nSELECT * FROM "no_such_table";',
      down: 'DROP TABLE "half_done";',
      hash: "x",
    };
    const error = await migrateUp(pool, [...all, broken]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).message).toMatch(/9999_broken failed and was rolled back: .*no_such_table/);
    expect(await catalogSnapshot(pool)).toEqual(before);
    expect((await appliedMigrations(pool)).map((m) => m.tag)).toEqual(all.map((m) => m.tag));
  });

  it("refuses to run when an applied migration was edited", async () => {
    const { pool } = database.backend;
    const all = loadMigrations();
    const edited = all.map((m, i) => (i === 1 ? { ...m, hash: "edited" } : m));
    await expect(migrateUp(pool, edited)).rejects.toThrow(/0001_schema was changed after it was applied/);
  });
});

describe("drift", () => {
  it("drizzle-kit generate against the committed migrations produces nothing new", async () => {
    // Inside the project (git-ignored .data/): drizzle-kit only accepts an `out` relative to the working directory.
    mkdirSync(path.join(ROOT, ".data"), { recursive: true });
    const work = mkdtempSync(path.join(ROOT, ".data", "drift-"));
    try {
      cpSync(path.join(ROOT, "drizzle"), path.join(work, "drizzle"), { recursive: true });
      const config = path.join(work, "drizzle.config.ts");
      writeFileSync(
        config,
        `import base from ${JSON.stringify(path.join(ROOT, "drizzle.config.ts"))};\n` +
          `export default { ...base, out: ${JSON.stringify(path.relative(ROOT, path.join(work, "drizzle")))} };\n`,
      );
      const before = readdirSync(path.join(work, "drizzle")).sort();
      const { stdout, stderr } = await promisify(execFile)("npx", ["drizzle-kit", "generate", "--config", config], {
        cwd: ROOT,
      });
      expect(stdout + stderr).toMatch(/No schema changes, nothing to migrate/);
      expect(readdirSync(path.join(work, "drizzle")).sort()).toEqual(before);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);
});
