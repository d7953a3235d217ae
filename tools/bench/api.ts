/**
 * `npm run bench:api`: what the main reads of the API cost at scale, end to end.
 *
 *   this script ──HTTP──▶ wrangler dev (the real Worker) ──Neon HTTP──▶ gateway ──▶ PostgreSQL
 *
 * On a database seeded with `db:seed` (default 10 repos × 1,000 tests × 1,000 CI runs = 10 million test
 * runs), for each read: warm-up requests, then timed ones through the Worker, each with other parameters
 * (another repository, test, commit, prefix or action), reporting p50/p95/p99; the same reads' SQL run
 * directly on PostgreSQL (the very service functions the routes call, over node-postgres) with their p50/p95
 * and the ratio of the two medians; and EXPLAIN (ANALYZE, BUFFERS) of each with the indexes it uses.
 *
 * Needs a PostgreSQL server: DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres, as a
 * superuser (or a role that may create databases and roles). A fresh database is made, migrated and
 * seeded for the run and dropped afterwards; `--keep` keeps it and prints its URL, and `--database <url>`
 * runs on such a database again (migrated if needed, seeded only if it has no seeded repos, never dropped).
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { Db } from "../../src/db/client.ts";
import * as schema from "../../src/db/schema/index.ts";
import { encodeCursor } from "../../src/lib/pagination.ts";
import { listAudit } from "../../src/services/audit-reads.ts";
import type { ServiceContext } from "../../src/services/context.ts";
import { listIngestions } from "../../src/services/ingestion-reads.ts";
import { commitRuns, getTest, listTests, testRuns } from "../../src/services/test-reads.ts";
import { createToken } from "../../src/services/tokens.ts";
import { withWorkerDb } from "../db/create-repo.ts";
import { serveLocalGateway } from "../db/local-gateway.ts";
import { migrateUp } from "../db/migrator.ts";
import { createLoginRoles, dropLoginRoles, ROLES } from "../db/roles.ts";
import { SEED_OWNER_PREFIX, seed } from "../db/seed.ts";
import { createTestDatabase } from "../db/test-database.ts";
import { type Backend, createServerBackend, type RunningGateway } from "../gateway/index.ts";
import { startWranglerDev, type WranglerDev } from "../wrangler-dev.ts";

const { values: args } = parseArgs({
  options: {
    database: { type: "string" },
    keep: { type: "boolean", default: false },
    repos: { type: "string", default: "10" },
    tests: { type: "string", default: "1000" },
    runs: { type: "string", default: "1000" },
    iterations: { type: "string", default: "200" },
    warmup: { type: "string", default: "20" },
    only: { type: "string" },
  },
});
const ITERATIONS = Number(args.iterations);
const WARMUP = Number(args.warmup);
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

function quantile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** A small deterministic PRNG (mulberry32), so two runs ask for the same parameters. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One parameter set of a read: the request through the Worker and the same service calls on pg. */
interface Call {
  path: string;
  token: string;
  direct(ctx: ServiceContext): Promise<unknown>;
  /** Items the answer must have at least (a read that finds nothing measures nothing). */
  minItems: number;
}

interface Read {
  name: string;
  calls: Call[];
}

/** The indexes a plan uses, by name; a partition's index is reported as its parent's. */
function indexNames(plan: string): string[] {
  return [...plan.matchAll(/ Scan(?: Backward)? using (\S+) on | Bitmap Index Scan on (\S+)/g)].map(
    (m) => m[1] ?? m[2],
  );
}

async function main() {
  const reusing = args.database !== undefined;
  console.log(
    `anchorpipe bench:api — ${ITERATIONS} timed requests per read after ${WARMUP} warm-ups, through the Worker and directly on pg`,
  );

  // The database: a fresh one (seeded here), or one given with --database.
  let backend: Backend;
  let adminUrl: string;
  let readonlyUrl: string;
  let cleanup: () => Promise<void>;
  if (reusing) {
    adminUrl = args.database as string;
    const prefix = `anchorpipe_bench_${randomBytes(4).toString("hex")}`;
    const logins = await createLoginRoles(adminUrl, prefix);
    backend = createServerBackend(adminUrl, { logins });
    readonlyUrl = logins.get(ROLES.readonly) as string;
    cleanup = async () => {
      await backend.close();
      await dropLoginRoles(adminUrl, prefix);
    };
  } else {
    const database = await createTestDatabase(serverUrl);
    backend = database.backend;
    adminUrl = database.connectionString as string;
    readonlyUrl = database.logins?.get(ROLES.readonly) as string;
    cleanup = async () => {
      if (args.keep) {
        await backend.close();
        console.log(`kept the database: npm run bench:api -- --database ${adminUrl}`);
      } else {
        await database.drop();
      }
    };
  }

  let wrangler: WranglerDev | undefined;
  let running: RunningGateway | undefined;
  const direct = new pg.Pool({ connectionString: readonlyUrl, max: 2 });
  direct.on("error", () => {});
  try {
    const applied = await migrateUp(backend.pool);
    if (applied.length) console.log(`migrations applied: ${applied.join(", ")}`);

    const { rows: seeded } = await backend.pool.query(
      `SELECT count(*)::int AS n FROM repos WHERE owner LIKE '${SEED_OWNER_PREFIX}%' AND config ? 'seed'`,
    );
    if (Number(seeded[0].n) === 0) {
      const options = { repos: Number(args.repos), tests: Number(args.tests), runs: Number(args.runs) };
      console.log(`seeding ${options.repos} repos × ${options.tests} tests × ${options.runs} CI runs…`);
      const result = await seed(backend.pool, {
        ...options,
        onStep: (s) =>
          console.log(`  ${s.name.padEnd(60)} ${String(s.rows).padStart(10)} rows ${String(s.ms).padStart(8)} ms`),
      });
      console.log(
        `db:seed: ${result.testRuns.toLocaleString("en")} test runs, ${result.auditLogs.toLocaleString("en")} audit rows in ${(result.totalMs / 1000).toFixed(1)} s`,
      );
    }

    const sizes = (
      await backend.pool.query(`SELECT
        (SELECT count(*) FROM test_runs)::bigint AS runs, (SELECT count(*) FROM test_cases)::int AS tests,
        (SELECT count(*) FROM ingestions)::int AS ingestions, (SELECT count(*) FROM audit_logs)::int AS audit,
        (SELECT count(*) FROM repos)::int AS repos`)
    ).rows[0];
    console.log(
      `data: ${Number(sizes.repos)} repos, ${Number(sizes.tests).toLocaleString("en")} test cases, ${Number(sizes.ingestions).toLocaleString("en")} ingestions, ${Number(sizes.runs).toLocaleString("en")} test runs, ${Number(sizes.audit).toLocaleString("en")} audit rows`,
    );

    // Who reads: each seeded repo's seeded admin, and the seeded platform admin, with new personal tokens
    // made by the Worker's own token service.
    const { rows: people } = await backend.pool.query(
      `SELECT r.id AS repo_id, ur.user_id FROM repos r
       JOIN user_repo_roles ur ON ur.repo_id = r.id AND ur.role = 'admin'
       JOIN users u ON u.id = ur.user_id AND u.github_login LIKE '${SEED_OWNER_PREFIX}%'
       WHERE r.owner LIKE '${SEED_OWNER_PREFIX}%' AND r.config ? 'seed' ORDER BY r.config->'seed'->>'index'`,
    );
    const { rows: operators } = await backend.pool.query(
      `SELECT id FROM users WHERE is_platform_admin AND github_login = '${SEED_OWNER_PREFIX}operator'`,
    );
    if (people.length === 0 || operators.length === 0) {
      throw new Error("the database has no seeded users: seed it again with this version of db:seed (--reset)");
    }
    const { tokens, operatorToken } = await withWorkerDb(backend, async (db) => {
      const ctx = { db, now: () => new Date() };
      const tokens = new Map<string, string>();
      for (const p of people) tokens.set(p.repo_id, (await createToken(ctx, { userId: p.user_id, days: 1 })).token);
      const operatorToken = (await createToken(ctx, { userId: operators[0].id, days: 1 })).token;
      return { tokens, operatorToken };
    });
    const repoIds = [...tokens.keys()];

    const local = await serveLocalGateway(backend);
    running = local.running;
    wrangler = await startWranglerDev({
      vars: {
        DATABASE_URL: local.urls.app,
        DATABASE_URL_READONLY: local.urls.readonly,
        NEON_LOCAL_GATEWAY: "true",
        HMAC_KEK: `1:${randomBytes(32).toString("base64")}`,
        ENVIRONMENT: "development",
      },
      echoStderr: true,
    });
    const { url } = wrangler;

    const reads = [...floors(operatorToken), ...(await buildReads(direct, repoIds, tokens, operatorToken, url))];
    const only = args.only?.split(",");
    const rows: string[] = [];
    const explains: string[] = [];
    let captured: { query: string; params: unknown[] }[] = [];
    const directDb = drizzle(direct, {
      schema,
      casing: "snake_case",
      logger: { logQuery: (query, params) => captured.push({ query, params }) },
    }) as unknown as Db;
    const ctx: ServiceContext = { db: directDb, now: () => new Date() };

    for (const read of reads) {
      if (only && !only.some((o) => read.name.includes(o))) continue;
      const pick = prng(7);
      const sequence = Array.from(
        { length: WARMUP + ITERATIONS },
        () => read.calls[Math.floor(pick() * read.calls.length)],
      );

      // Through the Worker.
      const worker: number[] = [];
      const before = local.gateway.stats.requests;
      for (const [i, call] of sequence.entries()) {
        const started = performance.now();
        const res = await fetch(`${url}${call.path}`, { headers: { Authorization: `Bearer ${call.token}` } });
        const body = (await res.json()) as { items?: unknown[]; recentRuns?: unknown[] };
        const elapsed = performance.now() - started;
        if (res.status !== 200)
          throw new Error(`${read.name}: GET ${call.path} → ${res.status} ${JSON.stringify(body)}`);
        const items = body.items ?? body.recentRuns ?? [];
        if (items.length < call.minItems) {
          throw new Error(
            `${read.name}: GET ${call.path} gave ${items.length} items, expected at least ${call.minItems}`,
          );
        }
        if (i >= WARMUP) worker.push(elapsed);
      }
      const dbRequests = (local.gateway.stats.requests - before) / sequence.length;

      // The same service calls, directly on pg (as anchorpipe_readonly, like the Worker's reads).
      const pgMs: number[] = [];
      for (const [i, call] of sequence.entries()) {
        const started = performance.now();
        await call.direct(ctx);
        const elapsed = performance.now() - started;
        if (i >= WARMUP) pgMs.push(elapsed);
      }

      // EXPLAIN (ANALYZE, BUFFERS) of each statement of one call.
      captured = [];
      if (!read.name.startsWith("floor")) await read.calls[0].direct(ctx);
      const used = new Set<string>();
      for (const [n, { query, params }] of captured.entries()) {
        const { rows: plan } = await direct.query(`EXPLAIN (ANALYZE, BUFFERS) ${query}`, params);
        const lines = plan.map((r) => r["QUERY PLAN"] as string);
        const names = await parentIndexes(direct, indexNames(lines.join("\n")));
        for (const name of names) used.add(name);
        explains.push(
          `### ${read.name}${captured.length > 1 ? ` (statement ${n + 1} of ${captured.length})` : ""}\n` +
            `indexes: ${names.join(", ") || "none"}\n` +
            `${lines.slice(0, 14).join("\n")}${lines.length > 14 ? "\n  …" : ""}\n` +
            `${lines.filter((l) => /Execution Time/.test(l)).join("")}\n`,
        );
      }

      const p50 = quantile(worker, 0.5);
      const pg50 = quantile(pgMs, 0.5);
      rows.push(
        [
          read.name,
          p50.toFixed(1),
          quantile(worker, 0.95).toFixed(1),
          quantile(worker, 0.99).toFixed(1),
          ...(read.name === floorNoDatabase
            ? ["—", "—", "—"]
            : [pg50.toFixed(2), quantile(pgMs, 0.95).toFixed(2), `${(p50 / pg50).toFixed(1)}×`]),
          dbRequests.toFixed(1),
          [...used].map((n) => `\`${n}\``).join(", "),
        ].join(" | "),
      );
      console.log(
        `  ${read.name}: Worker p50 ${p50.toFixed(1)} ms, p95 ${quantile(worker, 0.95).toFixed(1)} ms; pg p50 ${pg50.toFixed(2)} ms`,
      );
    }

    console.log(`
| read | Worker p50 ms | p95 ms | p99 ms | pg p50 ms | pg p95 ms | Worker p50 ÷ pg p50 | DB requests/read | index used |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${rows.map((r) => `| ${r} |`).join("\n")}

${explains.join("\n")}
PostgreSQL: ${backend.description}; machine: ${process.platform} ${process.arch}, Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}.`);
  } finally {
    await wrangler?.stop();
    await running?.close();
    await direct.end();
    await cleanup();
  }
}

const floorNoDatabase = "floor: GET /api/health/live (no database)";

/**
 * What any request costs through this stack, for comparison: no database at all; one `select 1`; the
 * (The reads below add the token lookup, the role lookup and their own queries, one request each.)
 */
function floors(operatorToken: string): Read[] {
  const call = (path: string, direct: Call["direct"]): Call => ({ path, token: operatorToken, minItems: 0, direct });
  return [
    { name: floorNoDatabase, calls: [call("/api/health/live", async () => {})] },
    {
      name: "floor: GET /api/health/db (select 1)",
      calls: [call("/api/health/db", (ctx) => ctx.db.execute(sql`select 1`))],
    },
  ];
}

/** The partitioned index a partition's index belongs to (itself for any other index). */
async function parentIndexes(pool: pg.Pool, names: string[]): Promise<string[]> {
  const found = new Set<string>();
  for (const name of names) {
    const { rows } = await pool.query(
      `SELECT p.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_class p ON p.oid = i.inhparent
       WHERE c.relname = $1 AND c.relkind = 'i'`,
      [name],
    );
    found.add(rows[0]?.relname ?? name);
  }
  return [...found];
}

/** The reads, each with parameter sets drawn from the data (deterministically). */
async function buildReads(
  pool: pg.Pool,
  repoIds: string[],
  tokens: Map<string, string>,
  operatorToken: string,
  url: string,
): Promise<Read[]> {
  const q = async (text: string, params: unknown[] = []) => (await pool.query(text, params)).rows;
  const token = (repoId: string) => tokens.get(repoId) as string;
  const repos = `ARRAY[${repoIds.map((id) => `'${id}'::uuid`).join(",")}]`;

  // Directories of test files (a path prefix that matches a file's tests or a module's), per repo.
  const prefixes = await q(`
    SELECT repo_id, prefix FROM (
      SELECT DISTINCT repo_id, regexp_replace(path, '[^/]*$', '') AS prefix FROM test_cases WHERE repo_id = ANY(${repos})
    ) d ORDER BY md5(repo_id || prefix) LIMIT 100`);
  const tests = await q(`
    SELECT repo_id, id FROM test_cases WHERE repo_id = ANY(${repos}) ORDER BY md5(id::text) LIMIT 200`);
  const commits = await q(`
    SELECT DISTINCT ON (md5(repo_id || commit_sha)) repo_id, commit_sha FROM ingestions
    WHERE repo_id = ANY(${repos}) AND completed_at IS NOT NULL ORDER BY md5(repo_id || commit_sha) LIMIT 200`);
  const actions = ["ingestion_accepted", "hmac_auth_failure", "hmac_auth_success", "config_updated", "role_assigned"];

  // Page 100 of a test's runs: limit 50 where tests have 5,000 runs, else the largest limit that has one.
  const { rows: runCounts } = await pool.query(
    `SELECT min(n)::int AS n FROM (SELECT count(*) AS n FROM test_runs WHERE test_case_id = ANY($1::uuid[]) GROUP BY test_case_id) c`,
    [tests.slice(0, 20).map((t) => t.id)],
  );
  const pageLimit = Math.max(1, Math.min(50, Math.floor(Number(runCounts[0].n) / 100)));
  const page100: { repo_id: string; id: string; cursor: string }[] = [];
  for (const t of tests.slice(0, 100)) {
    // The last run of page 99, as the API's cursor carries it (src/lib/pagination.ts; timestamps in ms).
    const [last] = await q(
      `SELECT tr.started_at, tr.id FROM test_runs tr JOIN ingestions i ON i.id = tr.ingestion_id AND i.completed_at IS NOT NULL
       WHERE tr.test_case_id = $1 AND tr.repo_id = $2 ORDER BY tr.started_at DESC, tr.id DESC OFFSET $3 LIMIT 1`,
      [t.id, t.repo_id, 99 * pageLimit - 1],
    );
    if (last) page100.push({ ...t, cursor: encodeCursor([(last.started_at as Date).toISOString(), last.id]) });
  }
  if (page100.length === 0) throw new Error(`no test has ${100 * pageLimit} runs: page 100 does not exist`);
  await checkPage100(url, page100[0], token(page100[0].repo_id), pageLimit);

  const limit = 50;
  return [
    {
      name: "tests with a path prefix",
      calls: prefixes.map((p) => ({
        path: `/api/repos/${p.repo_id}/tests?path_prefix=${encodeURIComponent(p.prefix)}`,
        token: token(p.repo_id),
        minItems: 1,
        direct: (ctx) => listTests(ctx, p.repo_id, { pathPrefix: p.prefix }, { limit: limit + 1, after: null }),
      })),
    },
    {
      name: "one test with its recent runs",
      calls: tests.map((t) => ({
        path: `/api/repos/${t.repo_id}/tests/${t.id}`,
        token: token(t.repo_id),
        minItems: 20,
        direct: (ctx) =>
          Promise.all([getTest(ctx, t.repo_id, t.id), testRuns(ctx, t.repo_id, t.id, { limit: 20, after: null })]),
      })),
    },
    {
      name: `a test's runs, page 1 (limit ${limit})`,
      calls: tests.map((t) => ({
        path: `/api/repos/${t.repo_id}/tests/${t.id}/runs?limit=${limit}`,
        token: token(t.repo_id),
        minItems: limit,
        direct: (ctx) =>
          Promise.all([
            getTest(ctx, t.repo_id, t.id),
            testRuns(ctx, t.repo_id, t.id, { limit: limit + 1, after: null }),
          ]),
      })),
    },
    {
      name: `a test's runs, page 100 (limit ${pageLimit})`,
      calls: page100.map((t) => {
        const after = JSON.parse(Buffer.from(t.cursor, "base64url").toString()) as [string, string];
        return {
          path: `/api/repos/${t.repo_id}/tests/${t.id}/runs?limit=${pageLimit}&cursor=${t.cursor}`,
          token: token(t.repo_id),
          minItems: pageLimit,
          direct: (ctx) => testRuns(ctx, t.repo_id, t.id, { limit: pageLimit + 1, after }),
        };
      }),
    },
    {
      name: "ingestions, newest first",
      calls: repoIds.map((repoId) => ({
        path: `/api/repos/${repoId}/ingestions?limit=${limit}`,
        token: token(repoId),
        minItems: limit,
        direct: (ctx) => listIngestions(ctx, repoId, { limit: limit + 1, after: null }),
      })),
    },
    {
      name: "runs of a commit",
      calls: commits.map((c) => ({
        path: `/api/repos/${c.repo_id}/commits/${c.commit_sha}/runs?limit=${limit}`,
        token: token(c.repo_id),
        minItems: limit,
        direct: (ctx) => commitRuns(ctx, c.repo_id, c.commit_sha, { limit: limit + 1, after: null }),
      })),
    },
    {
      name: "a repo's audit log by action",
      calls: repoIds.flatMap((repoId) =>
        actions.map((action) => ({
          path: `/api/repos/${repoId}/audit?action=${action}&limit=${limit}`,
          token: token(repoId),
          minItems: 1,
          direct: (ctx: ServiceContext) => listAudit(ctx, { repoId, action }, { limit: limit + 1, after: null }),
        })),
      ),
    },
    {
      name: "the audit log by action (platform admin)",
      calls: actions.map((action) => ({
        path: `/api/audit?action=${action}&limit=${limit}`,
        token: operatorToken,
        minItems: 1,
        direct: (ctx: ServiceContext) => listAudit(ctx, { action }, { limit: limit + 1, after: null }),
      })),
    },
  ];
}

/** Following the API's own cursors to page 100 gives the page that the built cursor gives. */
async function checkPage100(
  url: string,
  t: { repo_id: string; id: string; cursor: string },
  token: string,
  limit: number,
): Promise<void> {
  const get = async (cursor?: string) => {
    const res = await fetch(
      `${url}/api/repos/${t.repo_id}/tests/${t.id}/runs?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
      { headers: { Authorization: `Bearer ${token}` } },
    );
    if (res.status !== 200) throw new Error(`page of runs: ${res.status} ${await res.text()}`);
    return (await res.json()) as { items: { id: string }[]; nextCursor: string | null };
  };
  let page = await get();
  for (let n = 2; n <= 100; n++) page = await get(page.nextCursor ?? undefined);
  const built = await get(t.cursor);
  if (JSON.stringify(page.items.map((r) => r.id)) !== JSON.stringify(built.items.map((r) => r.id))) {
    throw new Error("page 100 by following cursors differs from page 100 by the built cursor");
  }
}

await main().catch((error: unknown) => {
  console.error("bench:api failed:", error);
  process.exitCode = 1;
});
