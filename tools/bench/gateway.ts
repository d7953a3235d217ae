/**
 * `npm run bench:gateway`: what the local Neon gateway adds to a query.
 *
 *   direct:   this script ──pg (extended protocol)──▶ PostgreSQL / PGlite, as anchorpipe_app
 *   gateway:  this script ──HTTP (Neon's protocol)──▶ gateway ──▶ the same database, as anchorpipe_app
 *
 * Three workloads, interleaved in the same run so both paths see the same machine: one statement
 * (`select 1`), a 100-row read, and a 10-statement batch (a transaction). The added time per request is
 * the difference of the medians. To say where it goes, the same run also times an HTTP request that
 * touches no database (GET /stats: the HTTP and Hono floor) and the direct query run the way the gateway
 * runs it (a row-limited portal: Flush, then Sync, one more round trip than pg's usual path).
 * DATABASE_URL names a server (a scratch database is made and dropped); without it, embedded PGlite.
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { serveLocalGateway } from "../db/local-gateway.ts";
import { ROLES } from "../db/roles.ts";
import { createTestDatabase } from "../db/test-database.ts";
import { ResponseBudget, runStatement } from "../gateway/query.ts";

const { values } = parseArgs({
  options: { iterations: { type: "string", default: "2000" }, warmup: { type: "string", default: "200" } },
});
const ITERATIONS = Number(values.iterations);
const WARMUP = Number(values.warmup);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)];
const ms = (x: number) => x.toFixed(3);

async function main() {
  const database = await createTestDatabase();
  const { backend } = database;
  const local = await serveLocalGateway(backend);
  // The direct client on a server: a connection of the role the Worker's requests run as. PGlite has one
  // session, which the gateway needs too: there each direct query borrows it from the pool and gives it back.
  const server =
    backend.kind === "server"
      ? new pg.Client({ connectionString: database.logins?.get(ROLES.app) as string })
      : undefined;
  const onDirect = async <T>(work: (client: pg.ClientBase) => Promise<T>): Promise<T> => {
    if (server) return work(server);
    const client = await backend.pool.connect();
    try {
      return await work(client);
    } finally {
      client.release();
    }
  };
  try {
    await server?.connect();
    await backend.pool.query(
      "CREATE TABLE bench_rows AS SELECT n, md5(n::text) AS label, now() AS at FROM generate_series(1, 100) n",
    );
    await backend.pool.query(`GRANT SELECT ON bench_rows TO ${ROLES.app}`);

    const endpoint = local.running.endpoint;
    const headers = {
      "Neon-Connection-String": local.urls.app,
      "Neon-Raw-Text-Output": "true",
      "Neon-Array-Mode": "true",
    };
    const post = async (body: unknown) => {
      const res = await fetch(endpoint, { method: "POST", headers, body: JSON.stringify(body) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`gateway answered ${res.status}: ${text}`);
    };
    const extended = (text: string) =>
      onDirect((c) => c.query({ text, values: [], rowMode: "array", queryMode: "extended" } as pg.QueryConfig));
    const batchQueries = Array.from({ length: 10 }, (_, i) => ({
      query: `select ${i} as i, $1::text as t`,
      params: ["x"],
    }));

    type Run = () => Promise<unknown>;
    const workloads: { name: string; direct: Run; gateway: Run; paged?: Run }[] = [
      {
        name: "one statement (select 1)",
        direct: () => extended("select 1"),
        paged: () => onDirect((c) => runStatement(c, "select 1", [], new ResponseBudget(), false)),
        gateway: () => post({ query: "select 1", params: [] }),
      },
      {
        name: "100-row read",
        direct: () => extended("select * from bench_rows"),
        paged: () => onDirect((c) => runStatement(c, "select * from bench_rows", [], new ResponseBudget(), false)),
        gateway: () => post({ query: "select * from bench_rows", params: [] }),
      },
      {
        name: "10-statement batch",
        direct: () =>
          onDirect(async (c) => {
            await c.query("START TRANSACTION");
            for (const q of batchQueries) {
              await c.query({
                text: q.query,
                values: q.params,
                rowMode: "array",
                queryMode: "extended",
              } as pg.QueryConfig);
            }
            await c.query("COMMIT");
          }),
        gateway: () => post({ queries: batchQueries }),
      },
    ];

    const httpFloor: number[] = [];
    console.log(
      `anchorpipe bench:gateway — ${backend.description}; ${ITERATIONS} timed requests per path after ${WARMUP} warm-ups\n`,
    );
    const rows: string[] = [];
    for (const workload of workloads) {
      const times = { direct: [] as number[], gateway: [] as number[], paged: [] as number[] };
      for (let i = 0; i < WARMUP + ITERATIONS; i++) {
        for (const path of ["direct", "gateway", "paged"] as const) {
          const run = workload[path];
          if (!run) continue;
          const started = performance.now();
          await run();
          if (i >= WARMUP) times[path].push(performance.now() - started);
        }
        if (workload === workloads[0]) {
          const started = performance.now();
          await (await fetch(`${endpoint.replace(/\/sql$/, "")}/stats`)).text();
          if (i >= WARMUP) httpFloor.push(performance.now() - started);
        }
      }
      const added = median(times.gateway) - median(times.direct);
      rows.push(
        `| ${workload.name} | ${ms(median(times.direct))} | ${ms(median(times.gateway))} | ${ms(p95(times.gateway))} | **${ms(added)}** | ${times.paged.length ? ms(median(times.paged)) : "–"} |`,
      );
    }
    console.log(
      "| workload | direct pg median ms | gateway median ms | gateway p95 ms | added ms | direct, paged portal median ms |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (const row of rows) console.log(row);
    console.log(`\nHTTP + Hono floor (GET /stats, no database): median ${ms(median(httpFloor))} ms`);
  } finally {
    await server?.end();
    await local.running.close();
    await database.drop();
  }
}

await main();
