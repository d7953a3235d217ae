/**
 * `npm run bench:erasure`: what erasing one person costs, in the database and in the test-run archive.
 *
 *   this script ──pg──▶ PostgreSQL: anchorpipe_erase_user(person) in a rolled-back transaction, timed
 *        └──▶ the Worker's service code (src/services/privacy/archive-erasure.ts) in Node, its database client the
 *             Worker's (drizzle neon-http through the in-process gateway) ──▶ PostgreSQL; the archive in memory
 *
 * Seeds one repository with `--runs` test runs (default 100,000) in January 2025, of which each of
 * `--iterations` people is named in `--named` runs' failure output and metadata (default 100), plus 2,000 test
 * cases and 100 uploads; archives the month with retention's own code (src/services/retention/archive.ts) into
 * an in-memory bucket, the runs also staying in the database. Then, for each person in turn:
 *
 * - **database**: `select anchorpipe_erase_user(…)` inside BEGIN … ROLLBACK, so every person meets the same
 *   database; baseline: reading every row of every table as text once (`sum(length(t::text))`), the least a
 *   rewrite of every text column has to do;
 * - **archive**: the archive pass of that person's erasure (list, scan every part, rewrite the parts naming
 *   them, manifest kept consistent); baseline: reading and decompressing every part once.
 *
 * Reports medians and each against its baseline. The archive pass runs in Node's V8, the engine workerd uses;
 * the bucket is in memory, so R2's own latency (one GET per part, one PUT per rewritten part) is not in it.
 *
 * Needs a PostgreSQL server: DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres. A fresh
 * database is made for the run and dropped afterwards.
 */
import { Command } from "commander";
import pg from "pg";
import type { Db } from "../../src/db/client.ts";
import { eraseFromArchive, personNeedles } from "../../src/services/privacy/archive-erasure.ts";
import { archiveRepoMonth } from "../../src/services/retention/archive.ts";
import type { ArchiveObject } from "../../src/services/retention/manifest.ts";
import type { ListedObject, ListingBucket } from "../../src/services/retention/rewrite.ts";
import { withWorkerDb } from "../db/create-repo.ts";
import { migrateUp } from "../db/migrator.ts";
import { createTestDatabase } from "../db/test-database.ts";

const MONTH = "2025-01";
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A bucket in memory with R2's list semantics (keys in order, startAfter, limit, truncated). */
export function memoryBucket(): ListingBucket & { totalBytes(): number; keys(): string[] } {
  const objects = new Map<string, { bytes: Uint8Array; uploaded: Date; customMetadata?: Record<string, string> }>();
  const toBytes = (value: ArrayBuffer | ArrayBufferView | string) =>
    typeof value === "string"
      ? new TextEncoder().encode(value)
      : value instanceof ArrayBuffer
        ? new Uint8Array(value.slice(0))
        : new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  return {
    async get(key): Promise<(ArchiveObject & { customMetadata?: Record<string, string> }) | null> {
      const object = objects.get(key);
      if (!object) return null;
      const blob = new Blob([object.bytes as Uint8Array<ArrayBuffer>]);
      return {
        body: blob.stream(),
        arrayBuffer: () => blob.arrayBuffer(),
        text: () => blob.text(),
        customMetadata: object.customMetadata,
      };
    },
    async put(key, value, options) {
      objects.set(key, { bytes: toBytes(value), uploaded: new Date(), customMetadata: options?.customMetadata });
    },
    async list({ prefix = "", startAfter, limit = 1000 }) {
      const keys = [...objects.keys()]
        .filter((key) => key.startsWith(prefix) && (!startAfter || key > startAfter))
        .sort();
      const page: ListedObject[] = keys.slice(0, limit).map((key) => {
        const object = objects.get(key) as { bytes: Uint8Array; uploaded: Date };
        return { key, size: object.bytes.byteLength, uploaded: object.uploaded };
      });
      return { objects: page, truncated: keys.length > limit };
    },
    totalBytes: () => [...objects.values()].reduce((sum, o) => sum + o.bytes.byteLength, 0),
    keys: () => [...objects.keys()].sort(),
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** The people, the repository, its test cases and uploads, and the runs (some naming each person). */
async function seed(client: pg.Client, options: { runs: number; named: number; people: number }) {
  const people = await client.query<{ id: string; login: string; email: string }>(
    `insert into users (github_id, github_login, email, name)
     select (40000000 + p)::text, 'dev-' || p || '-' || substr(md5(p::text), 1, 6), 'dev' || p || '@mail.example',
       'Developer Number ' || p
     from generate_series(1, $1) p
     returning id, github_login as login, email`,
    [options.people],
  );
  await client.query(
    `insert into accounts (user_id, provider, provider_account_id) select id, 'github', 'acct-' || github_id from users`,
  );
  const {
    rows: [repo],
  } = await client.query<{ id: string }>(`insert into repos (owner, name) values ('bench', 'erasure') returning id`);
  await client.query(`select anchorpipe_ensure_test_run_partitions(1, '2025-01-01')`);
  await client.query(
    `insert into test_cases (repo_id, path, name, framework)
     select $1, 'src/module' || (n % 50) || '/feature.test.ts', 'case ' || n, 'vitest' from generate_series(1, 2000) n`,
    [repo.id],
  );
  await client.query(
    `insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
       tests_failed, tests_skipped, payload_sha256, response, received_at, completed_at)
     select $1, 'bench-' || u, md5(u::text) || substr(md5(u::text), 1, 8), 'ci-' || u, 'vitest', 'v2', 1000, 0, 0,
       repeat('0', 64), '{"accepted": true}', t, t
     from generate_series(0, 99) u, lateral (select '2025-01-01T00:00:00Z'::timestamptz + u * interval '7 hours') x(t)`,
    [repo.id],
  );
  // Run n names person (n / stride) % people when n % stride = 0: `named` runs per person, spread over the month.
  const stride = Math.max(1, Math.floor(options.runs / (options.named * options.people)));
  await client.query(
    `with people as (select row_number() over (order by github_id) - 1 as k, github_login, email, name, id from users)
     insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, branch, run_id, status, duration_ms,
       started_at, failure_details, metadata, created_at)
     select $1, tc.id, i.id, i.commit_sha, 'main', i.run_id,
       case when n % 20 = 7 or n % $3 = 0 then 'fail' else 'pass' end::test_run_status, (n * 37) % 900, i.received_at,
       case when n % $3 = 0 then 'AssertionError: expected greeting for ' || p.name || ' <' || p.email || E'>\\n    at '
              || p.github_login || '/login.test.ts:' || (n % 300) || ':17 (user ' || p.id || ')'
            when n % 20 = 7 then 'AssertionError: expected ' || n || ' to equal ' || (n + 1) ||
              E'\\n    at Context.<anonymous> (src/module' || (n % 50) || '/feature.test.ts:' || (n % 300) || ':17)' end,
       case when n % $3 = 0 then jsonb_build_object('owner', p.email, 'n', n) else jsonb_build_object('n', n) end,
       i.received_at + (n % 1000) * interval '1 second'
     from generate_series(0, $2 - 1) n
     join (select id, commit_sha, run_id, received_at, row_number() over (order by received_at) - 1 as u
           from ingestions where repo_id = $1) i on i.u = n % 100
     join (select id, row_number() over (order by name) - 1 as k from test_cases where repo_id = $1) tc on tc.k = n % 2000
     left join people p on p.k = (n / $3) % $4`,
    [repo.id, options.runs, stride, options.people],
  );
  await client.query("analyze");
  return { repoId: repo.id, people: people.rows };
}

/** Every part read and decompressed once: the floor under any pass over the archive. */
async function readWholeArchive(bucket: ReturnType<typeof memoryBucket>): Promise<number> {
  let chars = 0;
  for (const key of bucket.keys().filter((k) => k.endsWith(".ndjson.gz"))) {
    const object = await bucket.get(key);
    const bytes = new Uint8Array(await (object as ArchiveObject).arrayBuffer());
    const reader = new Blob([bytes as Uint8Array<ArrayBuffer>])
      .stream()
      .pipeThrough(new DecompressionStream("gzip"))
      .pipeThrough(new TextDecoderStream())
      .getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chars += value.length;
    }
  }
  return chars;
}

async function main(argv: string[]) {
  const program = new Command("bench:erasure")
    .description("Time erasing one person: the database function and the test-run archive pass, against baselines.")
    .option("--runs <n>", "test runs in the repository (all archived, all also in the database)", "100000")
    .option("--named <n>", "runs naming each person", "100")
    .option("--iterations <n>", "people erased (one measurement each)", "5")
    .parse(argv, { from: "user" });
  const options = program.opts<{ runs: string; named: string; iterations: string }>();
  const runs = Number(options.runs);
  const named = Number(options.named);
  const iterations = Number(options.iterations);
  console.log(
    `anchorpipe bench:erasure — ${runs.toLocaleString("en")} runs, ${named} naming each of ${iterations} people erased in turn`,
  );
  const database = await createTestDatabase(serverUrl);
  const client = new pg.Client({ connectionString: database.connectionString as string });
  client.on("error", () => {});
  try {
    await migrateUp(database.backend.pool);
    await client.connect();
    const seedStarted = performance.now();
    const { repoId, people } = await seed(client, { runs, named, people: iterations });
    const size = await client.query<{ size: string }>(
      `select pg_size_pretty(pg_total_relation_size('test_runs_p2025_01')) as size`,
    );
    console.log(
      `  seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s; test_runs_p2025_01: ${size.rows[0].size}`,
    );

    const bucket = memoryBucket();
    await withWorkerDb(database.backend, async (db: Db) => {
      const ctx = { db, now: () => new Date("2025-03-15T03:17:00Z") };
      const archived = await archiveRepoMonth(ctx, bucket, {
        repoId,
        month: MONTH,
        until: new Date("2025-02-01T00:00:00Z"),
        maxParts: 1_000,
      });
      console.log(
        `  archived: ${archived.manifest.parts.length} parts, ${(bucket.totalBytes() / 1048576).toFixed(1)} MiB gzip`,
      );

      const tables = await client.query<{ name: string }>(
        `select c.oid::regclass::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition`,
      );
      const databaseMs: number[] = [];
      const scanMs: number[] = [];
      const archiveMs: number[] = [];
      const readMs: number[] = [];
      const rows: string[] = [];
      for (const [index, who] of people.entries()) {
        // Database: the erasure, rolled back so that every person meets the same database.
        await client.query("begin");
        let started = performance.now();
        const erased = await client.query<{ rewritten: string }>(
          "select anchorpipe_erase_user($1::uuid, $2) as rewritten",
          [who.id, `erased-${index.toString(16).padStart(16, "0")}`],
        );
        databaseMs.push(performance.now() - started);
        await client.query("rollback");
        started = performance.now();
        for (const table of tables.rows) await client.query(`select sum(length(t::text)) from ${table.name} t`);
        scanMs.push(performance.now() - started);

        // Archive: the pass of this person's erasure, then the plain read of the same parts.
        started = performance.now();
        const pass = await eraseFromArchive(ctx, bucket, {
          requestId: `bench-${index}`,
          needles: await personNeedles(ctx, who.id),
          pseudonym: `erased-${index.toString(16).padStart(16, "0")}`,
          state: null,
          save: async () => {},
          stopAt: Number.POSITIVE_INFINITY,
        });
        archiveMs.push(performance.now() - started);
        started = performance.now();
        const chars = await readWholeArchive(bucket);
        readMs.push(performance.now() - started);
        rows.push(
          `| ${index + 1} | ${databaseMs[index].toFixed(0)} | ${Number(erased.rows[0].rewritten)} | ${scanMs[index].toFixed(0)} | ` +
            `${archiveMs[index].toFixed(0)} | ${pass.state.partsScanned} | ${pass.state.partsRewritten} | ${pass.state.linesRewritten} | ` +
            `${readMs[index].toFixed(0)} (${(chars / 1048576).toFixed(0)} MiB text) |`,
        );
      }
      // A person the archive never names: the pass only scans (no part is read twice or written).
      const nobody = await client.query<{ id: string }>(
        `insert into users (github_login, email, name) values ('quiet-person', 'quiet@mail.example', 'Quiet Person')
         returning id`,
      );
      const scanOnlyMs: number[] = [];
      for (let index = 0; index < iterations; index++) {
        const started = performance.now();
        await eraseFromArchive(ctx, bucket, {
          requestId: "bench-nobody",
          needles: await personNeedles(ctx, nobody.rows[0].id),
          pseudonym: "erased-ffffffffffffffff",
          state: null,
          save: async () => {},
          stopAt: Number.POSITIVE_INFINITY,
        });
        scanOnlyMs.push(performance.now() - started);
      }
      const scan50only = median(scanOnlyMs);
      const db50 = median(databaseMs);
      const scan50 = median(scanMs);
      const archive50 = median(archiveMs);
      const read50 = median(readMs);
      console.log(`
| person | database erasure ms | rows rewritten | baseline: read every table once ms | archive pass ms | parts scanned | parts rewritten | lines rewritten | baseline: read + gunzip every part ms |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

Medians: database erasure ${db50.toFixed(0)} ms against ${scan50.toFixed(0)} ms reading every table once (${(db50 / scan50).toFixed(2)}×);
archive pass ${archive50.toFixed(0)} ms against ${read50.toFixed(0)} ms reading and decompressing every part (${(archive50 / read50).toFixed(2)}×);
archive: ${(runs / (archive50 / 1000)).toLocaleString("en", { maximumFractionDigits: 0 })} runs/s, ${(bucket.totalBytes() / 1048576 / (archive50 / 1000)).toFixed(1)} MiB gzip/s;
a person named in no part: archive pass ${scan50only.toFixed(0)} ms (scan only, ${(scan50only / read50).toFixed(2)}× the plain read; ${(runs / (scan50only / 1000)).toLocaleString("en", { maximumFractionDigits: 0 })} runs/s).
PostgreSQL: ${database.backend.description}; machine: ${process.platform} ${process.arch}, Node ${process.version}.`);
    });
  } finally {
    await client.end().catch(() => {});
    await database.drop();
  }
}

await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error("bench:erasure failed:", error);
  process.exitCode = 1;
});
