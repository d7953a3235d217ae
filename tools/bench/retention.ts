/**
 * `npm run bench:retention`: archiving and purging one month of test runs through the real Worker.
 *
 *   this script ──/cdn-cgi/local/scheduled──▶ wrangler dev (workerd, the daily cron) ──Neon HTTP──▶ gateway ──▶ PostgreSQL
 *                                                      └──▶ local R2 bucket (ARCHIVE, in a temporary folder)
 *
 * Seeds one repository with `--runs` runs (default 1,000,000) created across January 2025 with SQL
 * generate_series, then fires the daily trigger as of 15 March 2025 (January is past the default 30-day
 * retention), and reports the retention job's time (its job_runs row), the archive it wrote (parts, bytes,
 * checksums re-read) and workerd's resident memory sampled every 20 ms while the job ran: the archive is
 * streamed in bounded parts, so the peak must not grow with the month.
 *
 * With --restore, the month is then put back with `npm run archive:restore`'s code (from the same local
 * bucket) and timed.
 *
 * Needs a PostgreSQL server: DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres. A fresh
 * database is made for the run and dropped afterwards.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { type ArchiveBucket, readManifest } from "../../src/services/retention/manifest.ts";
import { readPart } from "../../src/services/retention/restore.ts";
import { serveLocalGateway } from "../db/local-gateway.ts";
import { migrateUp } from "../db/migrator.ts";
import { restoreArchive } from "../db/restore-archive.ts";
import { createTestDatabase } from "../db/test-database.ts";
import type { RunningGateway } from "../gateway/index.ts";
import { startWranglerDev, type WranglerDev, workerdRssMiB } from "../wrangler-dev.ts";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "1000000" },
    "test-cases": { type: "string", default: "2000" },
    /** Then restore the month with `npm run archive:restore`'s code and time it. */
    restore: { type: "boolean", default: false },
  },
});
const RUNS = Number(args.runs);
const TEST_CASES = Number(args["test-cases"]);
/** Runs per upload (ingestion). */
const RUNS_PER_UPLOAD = 1_000;
const DAILY_CRON = "17 3 * * *";
const MONTH = "2025-01";
const SCHEDULED = new Date("2025-03-15T03:17:00Z");
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** One repository, TEST_CASES test cases, one ingestion per RUNS_PER_UPLOAD runs, RUNS runs across the month. */
async function seed(client: pg.Client): Promise<string> {
  const {
    rows: [repo],
  } = await client.query<{ id: string }>(`insert into repos (owner, name) values ('bench', 'retention') returning id`);
  await client.query(`select anchorpipe_ensure_test_run_partitions(3, '2025-01-01')`);
  await client.query(
    `insert into test_cases (repo_id, path, name, framework)
     select $1, 'src/module' || (n % 50) || '/feature.test.ts', 'case ' || n, 'vitest' from generate_series(1, $2) n`,
    [repo.id, TEST_CASES],
  );
  const uploads = Math.ceil(RUNS / RUNS_PER_UPLOAD);
  const monthMs = 31 * 24 * 3600 * 1000;
  await client.query(
    `insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
       tests_failed, tests_skipped, payload_sha256, response, received_at, completed_at)
     select $1, 'bench-' || u, md5(u::text) || substr(md5(u::text), 1, 8), 'ci-' || u, 'vitest', 'v2', $3, 0, 0,
       repeat('0', 64), '{"accepted": true}', ts, ts
     from generate_series(0, $2 - 1) u,
       lateral (select '2025-01-01T00:00:00Z'::timestamptz + make_interval(secs => u * ($4::float8 / $2 / 1000))) t(ts)`,
    [repo.id, uploads, RUNS_PER_UPLOAD, monthMs],
  );
  await client.query(
    `insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, branch, run_id, status, duration_ms,
       started_at, failure_details, created_at)
     select $1, tc.id, i.id, i.commit_sha, 'main', i.run_id,
       case when n % 20 = 7 then 'fail' when n % 25 = 3 then 'skip' else 'pass' end::test_run_status,
       (n * 37) % 900, i.received_at,
       case when n % 20 = 7 then 'AssertionError: expected ' || n || ' to equal ' || (n + 1) ||
         E'\n    at Context.<anonymous> (src/module' || (n % 50) || '/feature.test.ts:' || (n % 300) || ':17)' end,
       i.received_at
     from generate_series(0, $2 - 1) n
     join (select id, commit_sha, run_id, received_at, row_number() over (order by received_at) - 1 as u
           from ingestions where repo_id = $1) i on i.u = n / $3
     join (select id, row_number() over (order by name) - 1 as k from test_cases where repo_id = $1) tc
       on tc.k = n % $4`,
    [repo.id, RUNS, RUNS_PER_UPLOAD, TEST_CASES],
  );
  await client.query("analyze test_runs");
  return repo.id;
}

async function main() {
  console.log(
    `anchorpipe bench:retention — ${RUNS.toLocaleString("en")} runs created in ${MONTH}, retention as of ${SCHEDULED.toISOString()}`,
  );
  const database = await createTestDatabase(serverUrl);
  const state = await mkdtemp(path.join(tmpdir(), "anchorpipe-bench-retention-"));
  let wrangler: WranglerDev | undefined;
  let running: RunningGateway | undefined;
  const client = new pg.Client({ connectionString: database.connectionString as string });
  client.on("error", () => {});
  try {
    await migrateUp(database.backend.pool);
    const local = await serveLocalGateway(database.backend);
    running = local.running;
    await client.connect();
    const seedStarted = performance.now();
    const repoId = await seed(client);
    const size = await client.query<{ size: string }>(
      `select pg_size_pretty(pg_total_relation_size('test_runs_p2025_01')) as size`,
    );
    console.log(
      `  seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s; partition test_runs_p2025_01: ${size.rows[0].size}`,
    );

    wrangler = await startWranglerDev({
      vars: { DATABASE_URL: local.urls.app, NEON_LOCAL_GATEWAY: "true", ENVIRONMENT: "development" },
      persistTo: state,
      echoStderr: true,
    });
    const { url, workerdPids } = wrangler;
    const rssBefore = workerdRssMiB(workerdPids);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, workerdRssMiB(workerdPids));
    }, 20);
    let retentionDone = false;
    const started = performance.now();
    const trigger = fetch(
      `${url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent(DAILY_CRON)}&time=${SCHEDULED.getTime()}&format=json`,
    ).then((res) => res.text().then((text) => ({ status: res.status, text })));
    // The daily invocation runs retention, then the rescoring: stop sampling when retention's run has ended.
    let retentionMs = 0;
    while (!retentionDone) {
      const done = await Promise.race([trigger.then(() => true), new Promise((r) => setTimeout(() => r(false), 250))]);
      const row = await client.query<{ outcome: string }>(
        `select outcome from job_runs where job = 'retention' and outcome <> 'running'`,
      );
      if (row.rows.length || done) {
        retentionDone = true;
        retentionMs = performance.now() - started;
      }
    }
    clearInterval(sampler);
    const answer = await trigger;
    const ledger = await client.query<{
      outcome: string;
      ms: number;
      counts: Record<string, number>;
      error: string | null;
    }>(
      `select outcome, extract(epoch from finished_at - started_at) * 1000 as ms, counts, error
       from job_runs where job = 'retention'`,
    );
    if (!ledger.rows.length)
      throw new Error(
        `the daily trigger ran no retention job (is it in SCHEDULE in src/jobs/index.ts?): HTTP ${answer.status} ${answer.text}`,
      );
    const run = ledger.rows[0];
    if (run.outcome !== "succeeded") throw new Error(`retention ${run.outcome}: ${run.error ?? ""}`);
    const left = await client.query<{ present: boolean; runs: number }>(
      `select to_regclass('public.test_runs_p2025_01') is not null as present,
              (select count(*)::int from test_runs where repo_id = $1) as runs`,
      [repoId],
    );
    await wrangler.stop();
    wrangler = undefined;

    // The archive, read back from the local bucket wrangler wrote: every part's checksum and count.
    const { getPlatformProxy } = await import("wrangler");
    const proxy = await getPlatformProxy<{ ARCHIVE: ArchiveBucket }>({
      persist: { path: path.join(state, "v3") },
      remoteBindings: false,
    });
    let verified = 0;
    let parts = 0;
    let bytes = 0;
    try {
      const manifest = await readManifest(proxy.env.ARCHIVE, repoId, MONTH);
      if (!manifest) throw new Error("no manifest was written");
      for (const part of manifest.parts) {
        verified += (await readPart(proxy.env.ARCHIVE, part)).filter((l) => l.kind === "test_run").length;
        parts++;
        bytes += part.bytes;
      }
      if (!manifest.complete || manifest.rows !== RUNS || verified !== RUNS)
        throw new Error(`archive incomplete: manifest ${manifest.rows} runs, parts ${verified}`);
    } finally {
      await proxy.dispose();
    }

    let restored = "";
    if (args.restore) {
      const restoreStarted = performance.now();
      const counts = await restoreArchive({
        repo: repoId,
        month: MONTH,
        persistTo: state,
        env: { DATABASE_URL: database.connectionString as string },
      });
      restored = `\nRestore (archive:restore): ${counts.runsRestored.toLocaleString("en")} runs, ${counts.ingestionsRecreated} ingestions recreated in ${((performance.now() - restoreStarted) / 1000).toFixed(1)} s.`;
    }

    console.log(`
| runs in the month | retention job (ledger) | trigger → retention ended | archive | workerd RSS before → peak during the job |
| ---: | ---: | ---: | ---: | ---: |
| ${RUNS.toLocaleString("en")} | ${(Number(run.ms) / 1000).toFixed(1)} s | ${(retentionMs / 1000).toFixed(1)} s | ${parts} parts, ${(bytes / 1048576).toFixed(1)} MiB gzip (${(bytes / RUNS).toFixed(0)} B/run) | ${rssBefore.toFixed(0)} → ${rssPeak.toFixed(0)} MiB (+${(rssPeak - rssBefore).toFixed(0)}) |

Counts: ${JSON.stringify(run.counts)}
After: partition test_runs_p2025_01 ${left.rows[0].present ? "still present" : "dropped"}; ${left.rows[0].runs} runs of the repository left.
Archive re-read: ${verified.toLocaleString("en")} runs, every part's SHA-256 as in the manifest.${restored}
PostgreSQL: ${database.backend.description}; machine: ${process.platform} ${process.arch}, Node ${process.version}.`);
  } finally {
    await wrangler?.stop();
    await client.end().catch(() => {});
    await running?.close();
    await database.drop();
    await rm(state, { recursive: true, force: true });
  }
}

await main().catch((error: unknown) => {
  console.error("bench:retention failed:", error);
  process.exitCode = 1;
});
