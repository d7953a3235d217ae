/**
 * `npm run eval:flaky`: how well the flake model finds flaky tests, against the baselines and an oracle.
 *
 *   simulator ─JUnit─▶ uploader (tools/uploader, in process) ─HTTP─▶ wrangler dev (the real Worker)
 *        │                                  (the upload rescores its tests) └─Neon HTTP─▶ gateway ─▶ PostgreSQL
 *        └─ after each run: GET /api/repos/:repoId/flaky-tests (a read_only person's token)
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
import type { Db } from "../../src/db/client.ts";
import { parseKeyring } from "../../src/lib/keyring.ts";
import { setRole } from "../../src/services/roles.ts";
import { createToken } from "../../src/services/tokens.ts";
import { createUser } from "../../src/services/users.ts";
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
  output?: string;
}

const program = new Command("npm run eval:flaky --")
  .description("simulate CI histories, upload them through the real uploader and Worker, score, compare")
  .option("--seeds <list>", "comma-separated random seeds", "1,2,3")
  .option("--tests <n>", "tests per simulated suite", String(DEFAULT_SIMULATION.tests))
  .option("--runs <n>", "CI runs per history", String(DEFAULT_SIMULATION.runs))
  .option("--output <file>", "also write the markdown table to this file");

interface SeedReport {
  seed: number;
  simulation: Simulation;
  rows: { name: string; metrics: Metrics; precisionAtModelRecall: number | null | undefined }[];
  seconds: number;
  timing: { uploadMs: number; readMs: number };
}

/** What the flaky-test endpoint flags now (every page), as simulated test indexes. */
async function flaggedNow(url: string, repoId: string, token: string): Promise<number[]> {
  const flagged: number[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ class: "flaky,highly_flaky", limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const res = await fetch(`${url}/api/repos/${repoId}/flaky-tests?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (res.status !== 200) throw new Error(`GET flaky-tests: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as { items: { name: string }[]; nextCursor: string | null };
    for (const item of page.items) flagged.push(Number(item.name.replace(/^case /, "")));
    cursor = page.nextCursor;
  } while (cursor);
  return flagged;
}

async function evaluateSeed(
  seed: number,
  options: { tests: number; runs: number },
  env: {
    url: string;
    db: Db;
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
  // A person who may read the repository, as a dashboard or CI job would be.
  const ctx = { db: env.db, now: () => new Date() };
  const reader = await createUser(ctx, { login: `eval-reader-${seed}-${randomBytes(4).toString("hex")}` });
  await setRole(ctx, { actorId: reader.id, repoId, userId: reader.id, role: "read_only" });
  const { token } = await createToken(ctx, { userId: reader.id });
  const dir = await mkdtemp(path.join(tmpdir(), `anchorpipe-eval-${seed}-`));
  const firstFlagged = new Map<number, number>();
  let flagged: number[] = [];
  const timing = { uploadMs: 0, readMs: 0 };
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
      // The upload scored the tests it ran (as of its newest result): read what the API now flags.
      const readStarted = performance.now();
      flagged = await flaggedNow(env.url, repoId, token);
      timing.readMs += performance.now() - readStarted;
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
        evaluateSeed(seed, { tests, runs }, { url, db, createRepo }),
      );
      reports.push(report);
      const problems = verdict(report);
      console.log(
        `  seed ${seed}: ${report.seconds.toFixed(0)} s (uploads ${(report.timing.uploadMs / 1000).toFixed(0)} s, ` +
          `reads ${(report.timing.readMs / 1000).toFixed(0)} s); ${report.simulation.runs.filter((r) => r.outage).length} outages, ` +
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
