import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKek, parseKeyring } from "../../src/lib/keyring.ts";
import { createRepoWithSecret } from "../../tools/db/create-repo.ts";
import { type LocalGateway, serveLocalGateway } from "../../tools/db/local-gateway.ts";
import { migrateUp } from "../../tools/db/migrator.ts";
import { prepareMigrator } from "../../tools/db/roles.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";
import { type Backend, createEmbeddedBackend } from "../../tools/gateway/backends.ts";
import { signedHeaders } from "../../tools/uploader/sign.ts";
import { startWranglerDev, type WranglerDev } from "../../tools/wrangler-dev.ts";

/**
 * Issue #8, defect 6: the database connection goes away in the middle of concurrent uploads through the
 * real Worker (wrangler dev → gateway → database) — on a server its backend sessions are terminated, as a
 * restart, a failover or an idle timeout does; embedded, the PGlite instance is stopped under the gateway.
 * The gateway survives, the Worker answers what it answers for an unavailable database, and uploads sent
 * again with the same webhook-id are each stored exactly once.
 */
const UPLOADS = 40;
const RESULTS = 20;

let database: TestDatabase | undefined;
let embedded: { backend: Backend; pglite: PGlite; dir: string } | undefined;
let local: LocalGateway;
let worker: WranglerDev;
let repoId = "";
let secret = "";
let stateDir = "";
let answered = 0;
let cut: (() => Promise<void>) | undefined;
let cutDone: Promise<void> | undefined;

const backend = () => (database?.backend ?? embedded?.backend) as Backend;

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), "anchorpipe-uploads-"));
  if (process.env.DATABASE_URL) {
    database = await createTestDatabase();
  } else {
    const dir = path.join(stateDir, "pglite");
    const pglite = await PGlite.create(dir);
    const created = await createEmbeddedBackend({ dataDir: dir, pglite });
    await prepareMigrator(created.pool);
    embedded = { backend: created, pglite, dir };
  }
  await migrateUp(backend().pool);
  const kek = generateKek();
  ({
    repo: { id: repoId },
    plaintext: secret,
  } = await createRepoWithSecret(backend(), await parseKeyring(kek), { owner: "resilience", name: "uploads" }));
  local = await serveLocalGateway(backend(), {
    log: (entry) => {
      if (entry.path !== "/sql") return;
      answered += 1;
      // Deterministic: once the gateway has answered this many SQL requests of the uploads, cut.
      if (cut && answered === 24) cutDone = cut();
    },
  });
  worker = await startWranglerDev({
    vars: { DATABASE_URL: local.urls.app, NEON_LOCAL_GATEWAY: "true", HMAC_KEK: kek, ENVIRONMENT: "development" },
    persistTo: path.join(stateDir, "wrangler-state"),
  });
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await local?.running.close();
  await database?.drop();
  await embedded?.backend.close();
  rmSync(stateDir, { recursive: true, force: true });
});

function upload(id: string, body: string): Promise<Response> {
  const headers = signedHeaders({
    scheme: "v2",
    secret,
    repoId,
    id,
    body: new TextEncoder().encode(body),
    timestamp: Math.floor(Date.now() / 1000),
  });
  return fetch(`${worker.url}/api/ingestion`, { method: "POST", headers, body });
}

describe("the database connection is cut during concurrent uploads", () => {
  it("every upload sent again is stored exactly once, and the stack serves on", async () => {
    const uploads = Array.from({ length: UPLOADS }, (_, i) => ({
      id: `msg_${randomUUID()}`,
      body: JSON.stringify({
        repo_id: repoId,
        commit_sha: "c".repeat(40),
        run_id: `cut-${i}`,
        framework: "vitest",
        tests: Array.from({ length: RESULTS }, (_, n) => ({
          path: `src/upload${i}.test.ts`,
          name: `case ${n}`,
          status: n % 5 === 0 ? "fail" : "pass",
          startedAt: new Date().toISOString(),
          durationMs: n,
        })),
      }),
    }));

    let terminated = 0;
    cut = async () => {
      if (database?.connectionString) {
        const admin = new pg.Client({ connectionString: database.connectionString });
        await admin.connect();
        try {
          const { rows } = await admin.query(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
          );
          terminated = rows.length;
        } finally {
          await admin.end();
        }
      } else if (embedded) {
        await embedded.pglite.close();
        terminated = 1;
      }
    };
    answered = 0;
    let statuses = await Promise.all(uploads.map(async (u) => (await upload(u.id, u.body)).status));
    await cutDone;
    expect(terminated).toBeGreaterThan(0);
    // Nothing but success or "try again": no 4xx, no hang, and the gateway process is still here.
    for (const status of statuses) expect([200, 500, 503]).toContain(status);

    cut = undefined;
    for (let round = 0; round < 5 && statuses.some((s) => s !== 200); round++) {
      statuses = await Promise.all(
        uploads.map(async (u, i) => (statuses[i] === 200 ? 200 : (await upload(u.id, u.body)).status)),
      );
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    const { rows } = await backend().pool.query(
      `select (select count(*)::text from ingestions where repo_id = $1) as ingestions,
              (select count(distinct idempotency_key)::text from ingestions where repo_id = $1) as keys,
              (select count(*)::text from test_runs where repo_id = $1) as runs`,
      [repoId],
    );
    expect(rows[0]).toEqual({ ingestions: String(UPLOADS), keys: String(UPLOADS), runs: String(UPLOADS * RESULTS) });
    expect((await fetch(`${worker.url}/api/health/db`)).status).toBe(200);
  }, 120_000);
});
