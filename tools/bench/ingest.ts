/**
 * `npm run bench:ingest`: what a CI upload costs, end to end.
 *
 *   this script ──HTTP──▶ wrangler dev (the real Worker) ──Neon HTTP──▶ gateway ──▶ PostgreSQL
 *
 * For uploads of 100, 1,000 and 10,000 results it reports median and p95
 * latency, results stored per second, database requests per upload (counted
 * by the gateway) and the Worker's peak memory; and, in the same run, the
 * floor: PostgreSQL COPYing the same rows into the same tables in one
 * transaction, with the ratio between the two.
 *
 * Needs a PostgreSQL server: DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 * A fresh database is made for the run and dropped afterwards.
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { PgDialect } from "drizzle-orm/pg-core";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { parseKeyring } from "../../src/lib/keyring.ts";
import { SCORING_SETTINGS } from "../../src/services/scoring/rescore.ts";
import { uploadScoringQuery } from "../../src/services/scoring/upload-scoring.ts";
import { createRepoWithSecret } from "../db/create-repo.ts";
import { serveLocalGateway } from "../db/local-gateway.ts";
import { migrateUp } from "../db/migrator.ts";
import { createTestDatabase } from "../db/test-database.ts";
import type { RunningGateway } from "../gateway/index.ts";
import { startWranglerDev, type WranglerDev, workerdPeakMiB, workerdRssMiB } from "../wrangler-dev.ts";
import { parseThroughput } from "./parse.ts";

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "100,1000,10000" },
    iterations: { type: "string", default: "15" },
    warmup: { type: "string", default: "3" },
    "max-body": { type: "string", default: String(5 * 1024 * 1024) },
  },
});
const SIZES = args.sizes.split(",").map(Number);
const ITERATIONS = Number(args.iterations);
const WARMUP = Number(args.warmup);
/** The Worker's body cap for the run (INGESTION_MAX_BODY_BYTES); the maximal upload fills it. */
const MAX_BODY = Number(args["max-body"]);
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

const median = (xs: number[]) => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** A realistic result: most pass quickly, some fail with a stack trace, a few are skipped. */
function results(n: number, seed: string) {
  const startedAt = new Date().toISOString();
  return Array.from({ length: n }, (_, i) => {
    const fail = i % 20 === 7;
    return {
      path: `src/module${i % 50}/feature${i % 7}.test.ts`,
      name: `${seed} behaves correctly in case ${i}`,
      status: fail ? "fail" : i % 25 === 3 ? "skip" : "pass",
      startedAt,
      durationMs: (i * 37) % 900,
      ...(fail
        ? {
            failureDetails: `AssertionError: expected ${i} to equal ${i + 1}\n    at Context.<anonymous> (src/module${i % 50}/feature.test.ts:${i % 300}:17)`,
          }
        : {}),
    };
  });
}

function signedRequest(body: string, repoId: string, secret: string) {
  const id = `msg_${randomUUID()}`;
  const timestamp = Math.floor(Date.now() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return {
    method: "POST",
    body,
    headers: {
      Authorization: `Bearer ${repoId}`,
      "Content-Type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": `v1,${signature}`,
    },
  };
}

/** The largest body under `cap`: 10,000 failed results whose failure output fills the rest. */
function maximalBody(repoId: string, cap: number): string {
  const build = (detailsLength: number) =>
    JSON.stringify({
      repo_id: repoId,
      commit_sha: "f".repeat(40),
      run_id: `bench-max-${randomUUID()}`,
      framework: "vitest",
      tests: results(10_000, "max").map((r) => ({ ...r, status: "fail", failureDetails: "x".repeat(detailsLength) })),
    });
  const overhead = Buffer.byteLength(build(0));
  return build(Math.min(10_000, Math.floor((cap - overhead - 1024) / 10_000)));
}

async function main() {
  console.log(
    `anchorpipe bench:ingest — sizes ${SIZES.join(", ")}; ${ITERATIONS} timed uploads each after ${WARMUP} warm-ups`,
  );
  const database = await createTestDatabase(serverUrl);
  const kek = `1:${randomBytes(32).toString("base64")}`;
  let wrangler: WranglerDev | undefined;
  let running: RunningGateway | undefined;
  try {
    await migrateUp(database.backend.pool);
    const local = await serveLocalGateway(database.backend);
    running = local.running;
    const { repo, plaintext: secret } = await createRepoWithSecret(database.backend, await parseKeyring(kek), {
      owner: "bench",
      name: "ingest",
    });

    wrangler = await startWranglerDev({
      vars: {
        DATABASE_URL: local.urls.app,
        NEON_LOCAL_GATEWAY: "true",
        HMAC_KEK: kek,
        ENVIRONMENT: "development",
        INGESTION_MAX_BODY_BYTES: String(MAX_BODY),
      },
      echoStderr: true,
    });
    const { url, workerdPids } = wrangler;
    const baselineMiB = workerdPeakMiB(workerdPids);
    // First, before other uploads have grown the process, the largest upload the Worker accepts:
    // just under the body cap, with long failure output. Its memory is sampled while it runs.
    const bigBody = maximalBody(repo.id, MAX_BODY);
    const rssBefore = workerdRssMiB(workerdPids);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, workerdRssMiB(workerdPids));
    }, 2);
    const bigStarted = performance.now();
    const bigRes = await fetch(`${url}/api/ingestion`, signedRequest(bigBody, repo.id, secret));
    const bigText = await bigRes.text();
    const bigMs = performance.now() - bigStarted;
    clearInterval(sampler);
    if (bigRes.status !== 200) throw new Error(`maximal upload failed: ${bigRes.status} ${bigText}`);

    const rows: string[] = [];
    const floorConnection = new pg.Client({ connectionString: database.connectionString as string });
    floorConnection.on("error", () => {});
    await floorConnection.connect();
    for (const size of SIZES) {
      const latencies: number[] = [];
      const requests: number[] = [];
      const scoring: number[] = [];
      for (let i = 0; i < WARMUP + ITERATIONS; i++) {
        const body = JSON.stringify({
          repo_id: repo.id,
          commit_sha: randomBytes(20).toString("hex"),
          run_id: `bench-${size}-${i}`,
          framework: "vitest",
          branch: "main",
          tests: results(size, `s${size}`),
        });
        const before = local.gateway.stats.byUser.anchorpipe_app?.requests ?? 0;
        const started = performance.now();
        const res = await fetch(`${url}/api/ingestion`, signedRequest(body, repo.id, secret));
        const text = await res.text();
        const elapsed = performance.now() - started;
        if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${text}`);
        if (i >= WARMUP) {
          latencies.push(elapsed);
          requests.push((local.gateway.stats.byUser.anchorpipe_app?.requests ?? 0) - before);
          const { ingestionId } = JSON.parse(text) as { ingestionId: string };
          const asOf = new Date((JSON.parse(body) as { tests: { startedAt: string }[] }).tests[0].startedAt);
          scoring.push(await replayScoring(floorConnection, repo.id, ingestionId, asOf));
        }
      }
      const floor: number[] = [];
      for (let i = 0; i < WARMUP + ITERATIONS; i++) {
        const ms = await copyFloor(floorConnection, repo.id, size, i);
        if (i >= WARMUP) floor.push(ms);
      }
      const m = median(latencies);
      rows.push(
        [
          size.toLocaleString("en"),
          m.toFixed(1),
          quantile(latencies, 0.95).toFixed(1),
          Math.round((size / m) * 1000).toLocaleString("en"),
          median(requests).toString(),
          `${median(scoring).toFixed(1)} (${((100 * median(scoring)) / m).toFixed(1)} %)`,
          median(floor).toFixed(1),
          `${(m / median(floor)).toFixed(2)}×`,
        ].join(" | "),
      );
      console.log(`  ${size} results: median ${m.toFixed(1)} ms`);
    }

    const peakMiB = workerdPeakMiB(workerdPids);
    await floorConnection.end();

    console.log(`
| results per upload | median ms | p95 ms | results stored/s | DB requests/upload | of which scoring ms (share of median) | COPY floor median ms | median ÷ floor |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r} |`).join("\n")}

Maximal upload: ${(Buffer.byteLength(bigBody) / 1048576).toFixed(2)} MiB body, 10,000 failed results with long output → HTTP ${bigRes.status} in ${bigMs.toFixed(0)} ms;
  workerd resident memory rose from ${rssBefore.toFixed(0)} to ${rssPeak.toFixed(0)} MiB during it (+${(rssPeak - rssBefore).toFixed(0)} MiB, sampled every 2 ms).
workerd resident memory: ${baselineMiB.toFixed(0)} MiB after start-up; high-water mark over the whole run ${peakMiB.toFixed(0)} MiB (the process, not only the isolate).
PostgreSQL: ${database.backend.description}; machine: ${process.platform} ${process.arch}, Node ${process.version}.

Report parsing at the edge, per format (the largest real report of each; the parsers the Worker runs, in Node's V8):
${parseThroughput(5, 1)}`);
  } finally {
    await wrangler?.stop();
    await running?.close();
    await database.drop();
  }
}

const dialect = new PgDialect();

/**
 * What the upload's scoring statement (rescore the tests it ran, notifications, flaky_candidates) costs
 * inside the upload: the same statement for the same upload, replayed on PostgreSQL directly in a
 * transaction that is rolled back. The upload ran it once already, so the stored rows it compares with are
 * the ones it wrote; the work (the tests selected, their windows, the stored classes read to find
 * transitions) is the same. It is replayed as the request that completed the upload (its completed_at), so
 * the part that only that request runs is timed too.
 */
async function replayScoring(client: pg.Client, repoId: string, ingestionId: string, asOf: Date): Promise<number> {
  const settings = dialect.sqlToQuery(SCORING_SETTINGS);
  const { rows } = await client.query<{ completed_at: Date }>("select completed_at from ingestions where id = $1", [
    ingestionId,
  ]);
  const completedAt = rows[0].completed_at;
  const statement = dialect.sqlToQuery(uploadScoringQuery({ repoId, ingestionId, asOf, completedAt }));
  await client.query("begin");
  try {
    await client.query(settings.sql, settings.params);
    const started = performance.now();
    await client.query(statement.sql, statement.params);
    return performance.now() - started;
  } finally {
    await client.query("rollback");
  }
}

/**
 * The floor: the same rows (test cases, then runs) COPYed into the same
 * tables in one transaction, as fast as PostgreSQL takes data in.
 */
async function copyFloor(client: pg.Client, repoId: string, size: number, attempt: number): Promise<number> {
  const ingestionId = randomUUID();
  const rows = results(size, `floor${size}-${attempt}`);
  const caseIds = rows.map(() => randomUUID());
  const now = new Date().toISOString();
  const esc = (v: string | number | null | undefined) =>
    v === null || v === undefined
      ? "\\N"
      : String(v).replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n");
  const cases = rows.map((r, i) => [caseIds[i], repoId, r.path, r.name, "vitest"].map(esc).join("\t")).join("\n");
  const runs = rows
    .map((r, i) =>
      [
        randomUUID(),
        repoId,
        caseIds[i],
        ingestionId,
        "f".repeat(40),
        "main",
        `floor-${size}-${attempt}`,
        r.status,
        r.durationMs,
        r.startedAt,
        r.failureDetails,
        now,
      ]
        .map(esc)
        .join("\t"),
    )
    .join("\n");
  const started = performance.now();
  await client.query("BEGIN");
  await client.query(
    `insert into ingestions (id, repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
       tests_failed, tests_skipped, payload_sha256, response) values ($1, $2, $3, $4, $5, 'vitest', 'v2', 0, 0, 0, 'x', '{}')`,
    [ingestionId, repoId, ingestionId, "f".repeat(40), `floor-${size}-${attempt}`],
  );
  await copyIn(client, "COPY test_cases (id, repo_id, path, name, framework) FROM STDIN", cases);
  await copyIn(
    client,
    "COPY test_runs (id, repo_id, test_case_id, ingestion_id, commit_sha, branch, run_id, status, duration_ms, started_at, failure_details, created_at) FROM STDIN",
    runs,
  );
  await client.query("COMMIT");
  return performance.now() - started;
}

function copyIn(client: pg.Client, sql: string, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.query(copyFrom(sql));
    stream.on("finish", resolve);
    stream.on("error", reject);
    stream.end(`${data}\n`);
  });
}

await main().catch((error: unknown) => {
  console.error("bench:ingest failed:", error);
  process.exitCode = 1;
});
