import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateUp } from "../../tools/db/migrator.ts";
import { SeedError, type SeedResult, seed } from "../../tools/db/seed.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";

/** 2 repos × 30 tests × 20 CI runs, ending just after a month boundary so two monthly partitions are needed. */
const OPTIONS = { repos: 2, tests: 30, runs: 20, days: 10, until: new Date("2025-03-03T12:00:00Z"), seed: 7 };
const TEST_CASES = OPTIONS.repos * OPTIONS.tests;
const INGESTIONS = OPTIONS.repos * OPTIONS.runs;
const RUNS = TEST_CASES * OPTIONS.runs;

let a: TestDatabase;
let b: TestDatabase;
let first: SeedResult;

beforeAll(async () => {
  // One after the other: server database names are made from the time and the process id.
  a = await createTestDatabase();
  await migrateUp(a.backend.pool);
  b = await createTestDatabase();
  await migrateUp(b.backend.pool);
  first = await seed(a.backend.pool, OPTIONS);
}, 120_000);

afterAll(async () => {
  await a?.drop();
  await b?.drop();
});

async function value(pool: pg.Pool, sql: string): Promise<string> {
  const { rows } = await pool.query(sql);
  return String(Object.values(rows[0] as object)[0]);
}

/** An md5 per table over every column in a fixed order; only test_runs.id and flake_scores.id are random. */
async function checksums(pool: pg.Pool): Promise<Record<string, string>> {
  const tables = {
    repos: "SELECT md5(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY t.id)) FROM repos t",
    test_cases: "SELECT md5(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY t.id)) FROM test_cases t",
    ingestions: "SELECT md5(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY t.id)) FROM ingestions t",
    test_runs:
      "SELECT md5(string_agg((to_jsonb(t) - 'id')::text, E'\\n' ORDER BY t.ingestion_id, t.test_case_id)) FROM test_runs t",
    flake_scores:
      "SELECT md5(string_agg((to_jsonb(t) - 'id')::text, E'\\n' ORDER BY t.test_case_id)) FROM flake_scores t",
    users: "SELECT md5(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY t.id)) FROM users t",
    user_repo_roles: "SELECT md5(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY t.id)) FROM user_repo_roles t",
    audit_logs: "SELECT md5(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY t.id)) FROM audit_logs t",
  };
  return Object.fromEntries(
    await Promise.all(Object.entries(tables).map(async ([table, sql]) => [table, await value(pool, sql)])),
  );
}

describe("db:seed", () => {
  it("creates the requested number of rows", async () => {
    expect(first).toMatchObject({
      deletedRepos: 0,
      repos: 2,
      testCases: TEST_CASES,
      ingestions: INGESTIONS,
      testRuns: RUNS,
      flakeScores: TEST_CASES,
      defaultPartitionRows: 0,
    });
    const pool = a.backend.pool;
    expect(await value(pool, "SELECT count(*) FROM repos WHERE owner LIKE 'seed-%'")).toBe("2");
    expect(await value(pool, "SELECT count(*) FROM test_cases")).toBe(`${TEST_CASES}`);
    expect(await value(pool, "SELECT count(*) FROM ingestions")).toBe(`${INGESTIONS}`);
    expect(await value(pool, "SELECT count(*) FROM test_runs")).toBe(`${RUNS}`);
    expect(await value(pool, "SELECT count(*) FROM flake_scores")).toBe(`${TEST_CASES}`);
    // Every test has one run per CI run.
    expect(
      await value(
        pool,
        "SELECT count(DISTINCT n) || ':' || min(n) FROM (SELECT count(*) AS n FROM test_runs GROUP BY test_case_id) x",
      ),
    ).toBe(`1:${OPTIONS.runs}`);
  });

  it("makes users with roles on the seeded repos, and an audit history to filter by action", async () => {
    const pool = a.backend.pool;
    expect(first.users).toBe(OPTIONS.repos * 3 + 1);
    expect(
      await value(
        pool,
        "SELECT string_agg(role::text, ',' ORDER BY role) FROM user_repo_roles GROUP BY repo_id LIMIT 1",
      ),
    ).toBe("admin,member,read_only");
    expect(await value(pool, "SELECT count(*) FROM users WHERE is_platform_admin")).toBe("1");
    const { rows } = await pool.query(
      "SELECT action::text, count(*)::int AS n FROM audit_logs GROUP BY action ORDER BY action",
    );
    const byAction: Record<string, number> = Object.fromEntries(rows.map((r) => [r.action, Number(r.n)]));
    expect(byAction).toMatchObject({ hmac_auth_success: INGESTIONS, ingestion_accepted: INGESTIONS });
    expect(byAction.hmac_auth_failure).toBeGreaterThan(INGESTIONS);
    expect(first.auditLogs).toBe(Object.values(byAction).reduce((sum, n) => sum + n, 0));
  });

  it("loads the partitions detached and attaches them with every index and foreign key of the parent", async () => {
    const pool = a.backend.pool;
    expect(first.bulkLoaded).toBe(true);
    expect(first.indexesDeferred).toEqual(["test_runs_p2025_02", "test_runs_p2025_03"]);
    for (const partition of first.indexesDeferred) {
      // Each of the parent's indexes has this partition's index attached to it, and each foreign key its clone.
      const missing = await value(
        pool,
        `SELECT count(*) FROM pg_index parent
         WHERE parent.indrelid = 'test_runs'::regclass AND NOT EXISTS (
           SELECT FROM pg_inherits i JOIN pg_index child ON child.indexrelid = i.inhrelid
           WHERE i.inhparent = parent.indexrelid AND child.indrelid = '${partition}'::regclass)`,
      );
      expect(missing).toBe("0");
      const fks = await value(
        pool,
        `SELECT count(*) FROM pg_constraint WHERE conrelid = '${partition}'::regclass AND contype = 'f' AND conparentid <> 0`,
      );
      expect(fks).toBe("3");
    }
  });

  it("puts every run in a monthly partition, none in the default one", async () => {
    const pool = a.backend.pool;
    expect(first.partitionsCreated).toEqual(expect.arrayContaining(["test_runs_p2025_02", "test_runs_p2025_03"]));
    expect(await value(pool, "SELECT count(*) FROM test_runs_default")).toBe("0");
    const { rows } = await pool.query(
      "SELECT tableoid::regclass::text AS part, count(*) AS n FROM test_runs GROUP BY 1 ORDER BY 1",
    );
    expect(rows.map((r) => r.part)).toEqual(["test_runs_p2025_02", "test_runs_p2025_03"]);
  });

  it("gives each ingestion the counts and response of its runs", async () => {
    const pool = a.backend.pool;
    const mismatches = await value(
      pool,
      `SELECT count(*) FROM ingestions i
       JOIN (SELECT ingestion_id, count(*) AS total, count(*) FILTER (WHERE status = 'fail') AS failed,
               count(*) FILTER (WHERE status = 'skip') AS skipped,
               count(DISTINCT commit_sha) AS commits, count(DISTINCT run_id) AS run_ids, min(commit_sha) AS sha
             FROM test_runs GROUP BY ingestion_id) r ON r.ingestion_id = i.id
       WHERE (i.tests_total, i.tests_failed, i.tests_skipped) <> (r.total, r.failed, r.skipped)
          OR i.tests_total <> ${OPTIONS.tests} OR r.commits <> 1 OR r.run_ids <> 1 OR r.sha <> i.commit_sha
          OR (i.response->'summary'->>'tests_parsed')::int <> r.total
          OR (i.response->'summary'->>'tests_failed')::int <> r.failed
          OR i.response->>'ingestionId' <> i.id::text OR i.response->>'runId' <> i.run_id`,
    );
    expect(mismatches).toBe("0");
    expect(
      await value(
        pool,
        "SELECT count(*) FROM ingestions i WHERE NOT EXISTS (SELECT FROM test_runs r WHERE r.ingestion_id = i.id)",
      ),
    ).toBe("0");
  });

  it("looks like real CI history", async () => {
    const pool = a.backend.pool;
    const { rows } = await pool.query(`SELECT
        count(*) FILTER (WHERE status = 'pass') AS passes,
        count(*) FILTER (WHERE status = 'fail') AS fails,
        count(*) FILTER (WHERE status = 'skip') AS skips,
        count(*) FILTER (WHERE status = 'pass' AND rerun_count > 0) AS recovered,
        count(*) FILTER (WHERE commit_sha !~ '^[0-9a-f]{40}$') AS bad_shas,
        count(*) FILTER (WHERE created_at <= started_at OR created_at > started_at + interval '1 hour') AS bad_created,
        count(*) FILTER (WHERE started_at < '2025-02-21T12:00:00Z' OR started_at > '2025-03-03T12:00:00Z') AS out_of_range,
        count(*) FILTER (WHERE status = 'fail' AND failure_details IS NULL) AS fails_without_details,
        count(*) FILTER (WHERE duration_ms IS NULL OR duration_ms < 0) AS bad_durations
      FROM test_runs`);
    const stats = Object.fromEntries(Object.entries(rows[0]).map(([k, v]) => [k, Number(v)]));
    expect(stats.passes).toBeGreaterThan(stats.fails);
    expect(stats.fails).toBeGreaterThan(0);
    expect(stats.skips).toBeGreaterThan(0);
    expect(stats.recovered).toBeGreaterThan(0);
    expect(stats).toMatchObject({
      bad_shas: 0,
      bad_created: 0,
      out_of_range: 0,
      fails_without_details: 0,
      bad_durations: 0,
    });

    // Runs grouped into CI runs that share commits; mostly on main.
    const ci = await pool.query(`SELECT count(*) AS n, count(DISTINCT commit_sha) AS commits,
        count(*) FILTER (WHERE branch = 'main') AS on_main, count(*) FILTER (WHERE pull_request IS NOT NULL) AS prs
      FROM ingestions`);
    expect(Number(ci.rows[0].commits)).toBeLessThan(Number(ci.rows[0].n));
    expect(Number(ci.rows[0].on_main)).toBeGreaterThan(Number(ci.rows[0].n) / 2);

    // Identities follow each framework's conventions.
    const names = await pool.query(
      "SELECT r.owner || '/' || r.name AS repo, tc.framework, tc.path FROM test_cases tc JOIN repos r ON r.id = tc.repo_id ORDER BY tc.path LIMIT 1000",
    );
    expect(new Set(names.rows.map((r) => r.repo))).toEqual(
      new Set(["seed-acme/payments-api", "seed-globex/ml-pipeline"]),
    );
    for (const row of names.rows) {
      expect(row.path).toMatch(row.framework === "pytest" ? /^tests\/\w+\/test_\w+\.py$/ : /^src\/\w+\/\w+\.test\.ts$/);
    }

    // A broken test fails every run from the CI run where it broke on.
    expect(await value(pool, "SELECT count(*) FROM test_cases WHERE description LIKE 'Seeded test: broken%'")).not.toBe(
      "0",
    );
    const passesAfterBreaking = await value(
      pool,
      `SELECT count(*) FROM test_runs tr
       JOIN test_cases tc ON tc.id = tr.test_case_id
       JOIN (SELECT id, row_number() OVER (PARTITION BY repo_id ORDER BY received_at) AS ci FROM ingestions) i ON i.id = tr.ingestion_id
       WHERE tc.description LIKE 'Seeded test: broken%'
         AND i.ci >= substring(tc.description FROM 'run ([0-9]+)')::int AND tr.status <> 'fail'`,
    );
    expect(passesAfterBreaking).toBe("0");
    const flaky = await value(
      pool,
      `SELECT count(*) FROM flake_scores fs JOIN test_cases tc ON tc.id = fs.test_case_id
      WHERE tc.description LIKE 'Seeded test: flaky%' AND fs.class IN ('flaky', 'highly_flaky')`,
    );
    expect(Number(flaky)).toBeGreaterThan(0);
  });

  it("is deterministic: the same options give the same rows, with or without the bulk load", async () => {
    const second = await seed(b.backend.pool, { ...OPTIONS, bulkLoad: false });
    expect(second.bulkLoaded).toBe(false);
    expect(second.testRuns).toBe(RUNS);
    expect(await checksums(b.backend.pool)).toEqual(await checksums(a.backend.pool));
  });

  it("refuses to seed twice, and --reset replaces the seeded repos with identical ones", async () => {
    const pool = a.backend.pool;
    const before = await checksums(pool);
    await expect(seed(pool, OPTIONS)).rejects.toThrow(SeedError);
    // The refusal rolled back: nothing changed.
    expect(await checksums(pool)).toEqual(before);

    const again = await seed(pool, { ...OPTIONS, reset: true });
    expect(again).toMatchObject({ deletedRepos: 2, repos: 2, testRuns: RUNS });
    expect(await checksums(pool)).toEqual(before);

    // Also the plain path: foreign-key triggers on, cascades doing the deleting.
    const other = await seed(pool, { ...OPTIONS, seed: 8, reset: true, bulkLoad: false });
    expect(other).toMatchObject({ deletedRepos: 2, testRuns: RUNS, bulkLoaded: false });
    const changed = await checksums(pool);
    expect(changed.test_runs).not.toBe(before.test_runs);
    expect(changed.test_cases).not.toBe(before.test_cases);
  });

  it("rejects options out of range", async () => {
    await expect(seed(b.backend.pool, { repos: 0 })).rejects.toThrow(/repos must be/);
    await expect(seed(b.backend.pool, { tests: 1.5 })).rejects.toThrow(/tests must be/);
  });
});
