import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase } from "./db-support.ts";

/**
 * The hot queries use the indexes built for them, on tables with enough rows
 * (filled set-based, then ANALYZEd) that the planner would rather not scan.
 */
let database: TestDatabase;
const query = async (text: string) => (await database.backend.pool.query(text)).rows;
let sample: { repo: string; testCase: string; commit: string };

beforeAll(async () => {
  database = await migratedDatabase();
  await query(`
    insert into repos (owner, name) select 'org' || (g % 20), 'repo' || g from generate_series(1, 400) g;
    insert into test_cases (repo_id, path, name)
      select r.id, 'src/m' || (g % 7) || '.test.ts', 'case ' || g
      from (select id, row_number() over (order by id) as n from repos where name in ('repo1','repo2','repo3','repo4','repo5')) r,
           generate_series(1, 1000) g;
    insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme,
        tests_total, tests_failed, tests_skipped, payload_sha256, response)
      select r.id, 'k' || g, md5(r.id::text || g) || substr(md5(g::text), 1, 8), 'run' || g, 'junit', 'v2', 0, 0, 0, 'x', '{}'
      from repos r, generate_series(1, 40) g where r.name in ('repo1','repo2','repo3','repo4','repo5');
    insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, duration_ms)
      select tc.repo_id, tc.id, i.id, i.commit_sha, i.run_id,
             (array['pass','fail','skip'])[1 + abs(hashtext(tc.id::text || i.id::text)) % 3]::test_run_status,
             now() - (substr(i.idempotency_key, 2) || ' minutes')::interval, 10
      from test_cases tc join ingestions i on i.repo_id = tc.repo_id
      where abs(hashtext(tc.id::text || i.id::text)) % 4 = 0;
    insert into flake_scores (test_case_id, repo_id, runs_considered, pass_rate, volatility, recency_fail, clustering, score, class)
      select id, repo_id, 50, 0.5, 0.1, 0.1, 0.1, abs(hashtext(id::text)) % 101, 'stable' from test_cases;
    insert into hmac_secrets (repo_id, name, key_id, secret_ciphertext, kek_version, secret_sha256, active, revoked)
      select r.id, 'ci', 'k' || g, 'v1:x', 1, md5(r.id::text || g), g = 1, g > 1 from repos r, generate_series(1, 10) g;
    insert into audit_logs (action, subject, subject_id, metadata)
      select 'ingestion_accepted', 'repo', (g % 2000)::text, jsonb_build_object('n', g) from generate_series(1, 40000) g;
  `);
  await query("analyze");
  const [row] = await query(`
    select tc.repo_id as repo, tc.id as "testCase", (select commit_sha from test_runs where repo_id = tc.repo_id limit 1) as commit
    from test_cases tc join repos r on r.id = tc.repo_id where r.name = 'repo3' limit 1`);
  sample = row as typeof sample;
}, 120_000);
afterAll(() => database.drop());

/** Index names the plan uses, from EXPLAIN's JSON. */
async function indexesUsed(sql: string): Promise<string[]> {
  const [row] = await query(`explain (format json) ${sql}`);
  const plan = JSON.parse(Object.values(row)[0] as string);
  const names: string[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === "object") {
      for (const [key, value] of Object.entries(node)) {
        if (key === "Index Name") names.push(value as string);
        else walk(value);
      }
    }
  };
  walk(plan);
  return names;
}

/** A partitioned index and its per-partition children. */
async function indexFamily(parent: string): Promise<string[]> {
  const children = await query(
    `select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = '${parent}'::regclass`,
  );
  return [parent, ...children.map((r) => r.relname as string)];
}

describe("index use of the hot queries", () => {
  it("a test case's last 50 runs", async () => {
    const used = await indexesUsed(
      `select * from test_runs where test_case_id = '${sample.testCase}' order by started_at desc limit 50`,
    );
    expect(used.length).toBeGreaterThan(0);
    const family = await indexFamily("test_runs_test_case_started_idx");
    expect(
      used.every((name) => family.includes(name)),
      used.join(", "),
    ).toBe(true);
  });

  it("a repo's top flaky tests", async () => {
    const used = await indexesUsed(
      `select test_case_id, score from flake_scores where repo_id = '${sample.repo}' and score >= 60 order by score desc limit 20`,
    );
    expect(used).toEqual(["flake_scores_repo_flaky_idx"]);
  });

  it("the runs of a commit", async () => {
    const used = await indexesUsed(
      `select * from test_runs where repo_id = '${sample.repo}' and commit_sha = '${sample.commit}'`,
    );
    expect(used.length).toBeGreaterThan(0);
    const family = await indexFamily("test_runs_repo_commit_idx");
    expect(
      used.every((name) => family.includes(name)),
      used.join(", "),
    ).toBe(true);
  });

  it("the active secrets of a repo", async () => {
    expect(
      await indexesUsed(`select * from hmac_secrets where repo_id = '${sample.repo}' and active and not revoked`),
    ).toEqual(["hmac_secrets_active_repo_idx"]);
  });

  it("the audit log of a subject", async () => {
    expect(
      await indexesUsed(
        `select * from audit_logs where subject = 'repo' and subject_id = '42' order by created_at desc`,
      ),
    ).toEqual(["audit_logs_subject_idx"]);
  });

  it("audit metadata containment uses the GIN index", async () => {
    expect(await indexesUsed(`select * from audit_logs where metadata @> '{"n": 4242}'`)).toEqual([
      "audit_logs_metadata_gin",
    ]);
  });
});
