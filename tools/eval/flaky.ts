/**
 * `npm run eval:flaky`: how well the flake model finds flaky tests, against the baselines and an oracle.
 *
 *   simulator ─JUnit─▶ uploader (tools/uploader, in process) ─HTTP─▶ wrangler dev (the real Worker)
 *        │                                                              └─Neon HTTP─▶ gateway ─▶ PostgreSQL
 *        └─ after each run: rescore the test cases that upload touched (asOf = the run's time), read flake_scores
 *
 * Needs a PostgreSQL server: DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; a fresh
 * database is made for the run and dropped afterwards. The baselines and the oracle are replayed from the
 * simulated results (exactly what was uploaded). Table and reasoning: docs/flaky-eval.md.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Command } from "commander";
import { sql } from "drizzle-orm";
import type { Db } from "../../src/db/client.ts";
import { parseKeyring } from "../../src/lib/keyring.ts";
import { DEFAULT_SCORING_MODEL, type ScoringModel } from "../../src/services/scoring/model.ts";
import { rescore } from "../../src/services/scoring/rescore.ts";
import { createRepoWithSecret, withWorkerDb } from "../db/create-repo.ts";
import { serveLocalGateway } from "../db/local-gateway.ts";
import { migrateUp } from "../db/migrator.ts";
import { createTestDatabase } from "../db/test-database.ts";
import type { RunningGateway } from "../gateway/index.ts";
import { upload } from "../uploader/upload.ts";
import { startWranglerDev, type WranglerDev } from "../wrangler-dev.ts";
import { baselines, type Detection, type Metrics, metrics, oracle, precisionAtRecall } from "./metrics.ts";
import { DEFAULT_SIMULATION, junitReport, type Simulation, simulate } from "./simulate.ts";

interface Options {
  seeds: string;
  tests: string;
  runs: string;
  window: string;
  output?: string;
}

const program = new Command("npm run eval:flaky --")
  .description("simulate CI histories, upload them through the real uploader and Worker, score, compare")
  .option("--seeds <list>", "comma-separated random seeds", "1,2,3")
  .option("--tests <n>", "tests per simulated suite", String(DEFAULT_SIMULATION.tests))
  .option("--runs <n>", "CI runs per history", String(DEFAULT_SIMULATION.runs))
  .option("--window <n>", "the model's window (runs per test)", String(DEFAULT_SCORING_MODEL.windowRuns))
  .option("--output <file>", "also write the markdown table to this file");

interface SeedReport {
  seed: number;
  simulation: Simulation;
  rows: { name: string; metrics: Metrics; precisionAtModelRecall: number | null | undefined }[];
  seconds: number;
  timing: { uploadMs: number; scoreMs: number };
}

const FLAGGED = sql.raw(`('flaky', 'highly_flaky')`);

async function flaggedNow(db: Db, repoId: string): Promise<number[]> {
  const result = await db.execute<{ name: string }>(sql`
    select tc.name from flake_scores fs join test_cases tc on tc.id = fs.test_case_id
    where fs.repo_id = ${repoId} and fs.class in ${FLAGGED}`);
  return result.rows.map((r) => Number(r.name.replace(/^case /, "")));
}

async function evaluateSeed(
  seed: number,
  options: { tests: number; runs: number },
  env: {
    url: string;
    db: Db;
    model: ScoringModel;
    createRepo: (name: string) => Promise<{ repoId: string; secret: string }>;
  },
): Promise<SeedReport> {
  const started = performance.now();
  const simulation = simulate({
    ...DEFAULT_SIMULATION,
    seed,
    tests: options.tests,
    runs: options.runs,
    endsAt: Date.now() - 3_600_000,
  });
  const { repoId, secret } = await env.createRepo(`seed-${seed}`);
  const dir = await mkdtemp(path.join(tmpdir(), `anchorpipe-eval-${seed}-`));
  const firstFlagged = new Map<number, number>();
  let flagged: number[] = [];
  const timing = { uploadMs: 0, scoreMs: 0 };
  try {
    for (const run of simulation.runs) {
      const file = path.join(dir, `run-${run.index}.xml`);
      await writeFile(file, junitReport(simulation, run));
      const runId = `sim-${seed}-${run.index}`;
      const uploadStarted = performance.now();
      const outcome = await upload({
        files: [file],
        cwd: dir,
        url: env.url,
        repoId,
        secret,
        commit: run.commitSha,
        branch: "main",
        runId,
        env: {},
        quiet: true,
        retries: 2,
        retryDelayMs: 200,
      });
      if (outcome.exitCode !== 0)
        throw new Error(`upload of run ${run.index} failed: ${JSON.stringify(outcome.parts)}`);
      timing.uploadMs += performance.now() - uploadStarted;
      const scoreStarted = performance.now();
      // The incremental path, as an upload will run it: the test cases this upload touched, as of its time.
      const ingestions = await env.db.execute<{ id: string }>(
        sql`select id from ingestions where repo_id = ${repoId} and run_id = ${runId} and completed_at is not null`,
      );
      const asOf = new Date(run.startedAt.getTime() + 600_000);
      const ctx = { db: env.db, now: () => asOf };
      for (const { id } of ingestions.rows) await rescore(ctx, repoId, { ingestionId: id }, asOf, env.model);
      timing.scoreMs += performance.now() - scoreStarted;
      flagged = await flaggedNow(env.db, repoId);
      for (const index of flagged) if (!firstFlagged.has(index)) firstFlagged.set(index, run.index);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const model: Detection = { flagged: new Set(flagged), firstFlagged };
  const modelMetrics = metrics(simulation, model);
  const rows: SeedReport["rows"] = [{ name: "model", metrics: modelMetrics, precisionAtModelRecall: undefined }];
  for (const [name, detection] of Object.entries(baselines(simulation))) {
    const m = metrics(simulation, detection);
    const atRecall = detection.scores
      ? precisionAtRecall(simulation, detection.scores, modelMetrics.recall)
      : m.recall >= modelMetrics.recall
        ? m.precision
        : null;
    rows.push({ name, metrics: m, precisionAtModelRecall: atRecall });
  }
  rows.push({
    name: "oracle (outage-aware)",
    metrics: metrics(simulation, oracle(simulation)),
    precisionAtModelRecall: undefined,
  });
  return { seed, simulation, rows, seconds: (performance.now() - started) / 1000, timing };
}

const fixed = (value: number | null | undefined, digits = 3) =>
  value === undefined ? "" : value === null ? "unreachable" : value.toFixed(digits);

function table(reports: SeedReport[]): string {
  const lines = [
    "| seed | detector | precision | recall | median runs to detection | TP | FP | precision at the model's recall |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const report of reports) {
    for (const row of report.rows) {
      const m = row.metrics;
      lines.push(
        `| ${report.seed} | ${row.name} | ${fixed(m.precision)} | ${fixed(m.recall)} | ${m.medianRunsToDetection ?? "–"} | ${m.truePositives} | ${m.falsePositives} | ${fixed(row.precisionAtModelRecall)} |`,
      );
    }
  }
  return lines.join("\n");
}

/** The bar: precision ≥ 0.9, recall ≥ 0.9 × the oracle's, better precision than any baseline at that recall. */
function verdict(report: SeedReport): string[] {
  const model = report.rows[0].metrics;
  const oracleRow = report.rows.at(-1)!.metrics;
  const problems: string[] = [];
  if (model.precision < 0.9) problems.push(`precision ${model.precision.toFixed(3)} < 0.9`);
  if (model.recall < 0.9 * oracleRow.recall) {
    problems.push(`recall ${model.recall.toFixed(3)} < 0.9 × oracle ${oracleRow.recall.toFixed(3)}`);
  }
  for (const row of report.rows.slice(1, -1)) {
    const p = row.precisionAtModelRecall;
    if (p !== null && p !== undefined && p >= model.precision) {
      problems.push(`${row.name} reaches precision ${p.toFixed(3)} at the model's recall`);
    }
  }
  return problems;
}

async function main() {
  program.parse();
  const options = program.opts<Options>();
  const seeds = options.seeds.split(",").map(Number);
  const tests = Number(options.tests);
  const runs = Number(options.runs);
  const model = { ...DEFAULT_SCORING_MODEL, windowRuns: Number(options.window) };
  const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  console.log(`anchorpipe eval:flaky — seeds ${seeds.join(", ")}; ${tests} tests × ${runs} runs each`);
  const database = await createTestDatabase(serverUrl);
  const kek = `1:${randomBytes(32).toString("base64")}`;
  let wrangler: WranglerDev | undefined;
  let running: RunningGateway | undefined;
  try {
    await migrateUp(database.backend.pool);
    const local = await serveLocalGateway(database.backend);
    running = local.running;
    const keyring = await parseKeyring(kek);
    wrangler = await startWranglerDev({
      vars: { DATABASE_URL: local.urls.app, NEON_LOCAL_GATEWAY: "true", HMAC_KEK: kek, ENVIRONMENT: "development" },
    });
    const url = wrangler.url;
    const createRepo = async (name: string) => {
      const { repo, plaintext } = await createRepoWithSecret(database.backend, keyring, { owner: "eval", name });
      return { repoId: repo.id, secret: plaintext };
    };
    const reports: SeedReport[] = [];
    for (const seed of seeds) {
      // createRepoWithSecret runs its own in-process gateway and puts the Neon driver's settings back after.
      const report = await withWorkerDb(database.backend, (db) =>
        evaluateSeed(seed, { tests, runs }, { url, db, createRepo, model }),
      );
      reports.push(report);
      const problems = verdict(report);
      console.log(
        `  seed ${seed}: ${report.seconds.toFixed(0)} s (uploads ${(report.timing.uploadMs / 1000).toFixed(0)} s, ` +
          `scoring ${(report.timing.scoreMs / 1000).toFixed(0)} s); ${report.simulation.runs.filter((r) => r.outage).length} outages, ` +
          `${report.simulation.runs.filter((r) => r.retries).length} runs with retries; ` +
          (problems.length === 0 ? "meets the bar" : `misses: ${problems.join("; ")}`),
      );
    }
    const markdown = table(reports);
    console.log(`\n${markdown}\n`);
    if (options.output) await writeFile(options.output, `${markdown}\n`);
    const failing = reports.filter((r) => verdict(r).length > 0);
    if (failing.length > 0) process.exitCode = 1;
  } finally {
    await wrangler?.stop();
    await running?.close();
    await database.drop();
  }
}

await main().catch((error: unknown) => {
  console.error("eval:flaky failed:", error);
  process.exitCode = 1;
});
