/**
 * `npm run bench:score`: a full rescoring of one repository — 10,000 test cases with 50 runs each — on
 * PostgreSQL, and in the same run the floor: a plain SELECT of the same runs, with the ratio between the two.
 *
 * Both go over one direct connection (node-postgres), so the figures are the database's work plus
 * transferring the result, without the gateway. The data are made in SQL (deterministic): 50 completed
 * uploads of the whole suite, about 2 % of results failing, some retried, one outage.
 *
 * Needs a PostgreSQL server: DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 * A fresh database is made for the run and dropped afterwards.
 */
import { Command } from "commander";
import { PgDialect } from "drizzle-orm/pg-core";
import pg from "pg";
import { RECOMPUTE_SETTINGS, rescoreQuery } from "../../src/services/scoring/rescore.ts";
import { migrateUp } from "../db/migrator.ts";
import { createTestDatabase } from "../db/test-database.ts";

const program = new Command("npm run bench:score --")
  .description("time a full rescoring of a repository against a plain SELECT of the same rows")
  .option("--tests <n>", "test cases", "10000")
  .option("--runs <n>", "runs per test case", "50")
  .option("--iterations <n>", "timed repetitions", "9")
  .option("--warmup <n>", "untimed repetitions first", "2")
  .option("--explain", "print EXPLAIN ANALYZE of the scoring statement");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** The repository: test cases, completed uploads and their runs, made by PostgreSQL itself. */
async function seed(client: pg.Client, tests: number, runs: number, asOf: Date): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `insert into repos (owner, name) values ('bench', 'score') returning id`,
  );
  const repoId = rows[0].id;
  await client.query(
    `insert into test_cases (repo_id, path, name, framework)
     select $1, 'src/module' || (i % 50) || '/feature.test.ts', 'case ' || i, 'vitest'
     from generate_series(1, $2::int) as i`,
    [repoId, tests],
  );
  // Run k starts (runs - k) × 3 hours before asOf; every fourth run repeats the previous commit; run 17 is an outage.
  await client.query(
    `insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
       tests_failed, tests_skipped, payload_sha256, response, received_at, completed_at)
     select $1, 'bench-' || k, md5('commit' || (k - (k % 4 = 0)::int)) || left(md5('x' || k), 8), 'bench-' || k,
       'vitest', 'v2', $2::int, 0, 0, 'x', '{"summary": {"retry_recoveries": 0}}',
       $3::timestamptz - make_interval(hours => 3 * ($4::int - k)), $3::timestamptz
     from generate_series(1, $4::int) as k`,
    [repoId, tests, asOf.toISOString(), runs],
  );
  await client.query(
    `insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, started_at, rerun_count,
       created_at)
     select $1, tc.id, i.id, i.commit_sha, i.run_id,
       case when i.run_id = 'bench-17' and h % 10 < 8 then 'fail'
            when h % 1000 < 20 then 'fail' else 'pass' end::test_run_status,
       i.received_at, case when h % 1000 between 20 and 24 then 1 else 0 end, i.received_at
     from test_cases tc cross join ingestions i
     cross join lateral (select abs(hashtext(tc.id::text || i.id::text)) as h) x
     where tc.repo_id = $1 and i.repo_id = $1`,
    [repoId],
  );
  await client.query(
    `update ingestions i set tests_failed = f.failed,
       response = jsonb_build_object('summary', jsonb_build_object('retry_recoveries', f.recovered))
     from (select ingestion_id, count(*) filter (where status = 'fail') as failed,
       count(*) filter (where status = 'pass' and rerun_count > 0) as recovered
       from test_runs where repo_id = $1 group by ingestion_id) f
     where f.ingestion_id = i.id`,
    [repoId],
  );
  await client.query("analyze");
  return repoId;
}

async function main() {
  program.parse();
  const options = program.opts<{
    tests: string;
    runs: string;
    iterations: string;
    warmup: string;
    explain?: boolean;
  }>();
  const tests = Number(options.tests);
  const runs = Number(options.runs);
  const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const database = await createTestDatabase(serverUrl);
  const client = new pg.Client({ connectionString: database.connectionString as string });
  client.on("error", () => {});
  try {
    await migrateUp(database.backend.pool);
    await client.connect();
    const asOf = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1, 12));
    const seeded = performance.now();
    const repoId = await seed(client, tests, runs, asOf);
    console.log(
      `anchorpipe bench:score — ${tests.toLocaleString("en")} test cases × ${runs} runs made in ${((performance.now() - seeded) / 1000).toFixed(1)} s`,
    );
    const dialect = new PgDialect();
    const compiled = dialect.sqlToQuery(rescoreQuery(repoId, "all", asOf));
    const settings = dialect.sqlToQuery(RECOMPUTE_SETTINGS).sql;
    if (options.explain) {
      await client.query("begin");
      await client.query(settings);
      const plan = await client.query(`explain (analyze, buffers) ${compiled.sql}`, compiled.params);
      await client.query("rollback");
      console.log(plan.rows.map((r) => r["QUERY PLAN"]).join("\n"));
    }
    const select = `select id, test_case_id, ingestion_id, commit_sha, status, rerun_count, started_at
      from test_runs where repo_id = $1`;
    const scoring: number[] = [];
    const plain: number[] = [];
    let written = 0;
    let selected = 0;
    for (let i = 0; i < Number(options.warmup) + Number(options.iterations); i++) {
      let started = performance.now();
      // As rescore() runs it: one transaction with the scoring settings.
      await client.query("begin");
      await client.query(settings);
      const scored = await client.query(compiled.sql, compiled.params);
      await client.query("commit");
      const scoreMs = performance.now() - started;
      started = performance.now();
      const read = await client.query(select, [repoId]);
      const selectMs = performance.now() - started;
      written = scored.rowCount ?? 0;
      selected = read.rowCount ?? 0;
      if (i >= Number(options.warmup)) {
        scoring.push(scoreMs);
        plain.push(selectMs);
      }
    }
    const classes = await client.query(
      `select class, count(*)::int as n from flake_scores where repo_id = $1 group by class order by class`,
      [repoId],
    );
    const m = median(scoring);
    const floor = median(plain);
    console.log(`
| full rescoring: test cases scored | median ms | plain SELECT of the ${selected.toLocaleString("en")} runs, median ms | ratio |
| ---: | ---: | ---: | ---: |
| ${written.toLocaleString("en")} | ${m.toFixed(0)} | ${floor.toFixed(0)} | ${(m / floor).toFixed(2)}× |

classes: ${classes.rows.map((r) => `${r.class} ${r.n}`).join(", ")}
${options.iterations} timed runs after ${options.warmup} warm-ups; PostgreSQL: ${database.backend.description}; Node ${process.version}.`);
  } finally {
    await client.end().catch(() => {});
    await database.drop();
  }
}

await main().catch((error: unknown) => {
  console.error("bench:score failed:", error);
  process.exitCode = 1;
});
