import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  dropTestRunPartitionsBefore,
  ensureTestRunPartitions,
  listTestRunPartitions,
} from "../../src/services/partitions.ts";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase, workerDb } from "./db-support.ts";

/**
 * Partition upkeep through the Worker's own service functions and its kind of
 * client (drizzle over Neon HTTP, via the gateway), on the run's backend.
 */
let database: TestDatabase;
let db: ReturnType<typeof workerDb>;
let ids: { repo: string; testCase: string; ingestion: string };

const query = async (text: string, values: unknown[] = []) => (await database.backend.pool.query(text, values)).rows;

async function insertRun(createdAt: string): Promise<string> {
  const [row] = await query(
    `insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, created_at)
     values ($1, $2, $3, repeat('a', 40), 'r1', 'pass', $4::timestamptz, $4::timestamptz)
     returning tableoid::regclass::text as partition`,
    [ids.repo, ids.testCase, ids.ingestion, createdAt],
  );
  return row.partition;
}

beforeAll(async () => {
  database = await migratedDatabase();
  db = workerDb(database);
  const [repo] = await query("insert into repos (owner, name) values ('acme', 'parts') returning id");
  const [testCase] = await query("insert into test_cases (repo_id, path, name) values ($1, 'a', 'b') returning id", [
    repo.id,
  ]);
  const [ingestion] = await query(
    `insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
       tests_failed, tests_skipped, payload_sha256, response)
     values ($1, 'k', repeat('a', 40), 'r1', 'junit', 'v2', 1, 0, 0, 'x', '{}') returning id`,
    [repo.id],
  );
  ids = { repo: repo.id, testCase: testCase.id, ingestion: ingestion.id };
});
afterAll(() => database.drop());

const month = (d: Date) => `test_runs_p${d.toISOString().slice(0, 7).replace("-", "_")}`;

describe("test_runs partitions", () => {
  it("the migrations create the current and next month and a default partition", async () => {
    const now = new Date();
    const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    const names = (await listTestRunPartitions(db)).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining([month(now), month(next), "test_runs_default"]));
    expect(names.at(-1)).toBe("test_runs_default");
  });

  it("rows land in the partition of their created_at month", async () => {
    const now = new Date();
    expect(await insertRun(now.toISOString())).toBe(month(now));
    const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 15));
    expect(await insertRun(next.toISOString())).toBe(month(next));
  });

  it("upkeep creates the coming months once, and is idempotent", async () => {
    const first = await ensureTestRunPartitions(db, 2, new Date("2030-01-10T00:00:00Z"));
    expect(first.created).toEqual(["test_runs_p2030_01", "test_runs_p2030_02", "test_runs_p2030_03"]);
    const again = await ensureTestRunPartitions(db, 2, new Date("2030-01-10T00:00:00Z"));
    expect(again.created).toEqual([]);
    const partitions = await listTestRunPartitions(db);
    expect(partitions.find((p) => p.name === "test_runs_p2030_02")).toEqual({
      name: "test_runs_p2030_02",
      from: "2030-02-01 00:00:00+00",
      to: "2030-03-01 00:00:00+00",
    });
    expect(await insertRun("2030-02-28T23:59:59.999Z")).toBe("test_runs_p2030_02");
    expect(await insertRun("2030-03-01T00:00:00Z")).toBe("test_runs_p2030_03");
  });

  it("reports rows in the default partition and moves them when their month is created", async () => {
    expect(await insertRun("2040-06-15T12:00:00Z")).toBe("test_runs_default");
    const before = await ensureTestRunPartitions(db, 0, new Date("2030-01-01T00:00:00Z"));
    expect(before.defaultPartitionRows).toBe(1);
    const after = await ensureTestRunPartitions(db, 0, new Date("2040-06-01T00:00:00Z"));
    expect(after).toEqual({ created: ["test_runs_p2040_06"], defaultPartitionRows: 0 });
    expect(
      await query("select tableoid::regclass::text as p from test_runs where created_at = '2040-06-15T12:00:00Z'"),
    ).toEqual([{ p: "test_runs_p2040_06" }]);
  });

  it("retention drops whole old months and touches nothing else", async () => {
    await ensureTestRunPartitions(db, 1, new Date("2020-01-01T00:00:00Z"));
    await insertRun("2020-01-05T00:00:00Z");
    await insertRun("2020-02-05T00:00:00Z");
    const countsBefore = await query(
      "select tableoid::regclass::text as p, count(*)::int as n from test_runs group by 1 order by 1",
    );

    expect(await dropTestRunPartitionsBefore(db, new Date("2020-02-01T00:00:00Z"))).toEqual(["test_runs_p2020_01"]);
    expect(await dropTestRunPartitionsBefore(db, new Date("2020-02-01T00:00:00Z"))).toEqual([]);
    // A month is dropped only once it has ended before the cut-off.
    expect(await dropTestRunPartitionsBefore(db, new Date("2020-02-29T23:59:59Z"))).toEqual([]);

    const countsAfter = await query(
      "select tableoid::regclass::text as p, count(*)::int as n from test_runs group by 1 order by 1",
    );
    expect(countsAfter).toEqual(countsBefore.filter((r) => r.p !== "test_runs_p2020_01"));
    const names = (await listTestRunPartitions(db)).map((p) => p.name);
    expect(names).not.toContain("test_runs_p2020_01");
    expect(names).toContain("test_runs_p2020_02");
    expect(names).toContain("test_runs_default");
  });

  it("refuses an unreasonable horizon", async () => {
    await expect(ensureTestRunPartitions(db, 500)).rejects.toThrow();
  });
});
