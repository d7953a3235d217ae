import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { repos } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import worker from "../../src/index";
import { flakeRecompute } from "../../src/jobs/flake-recompute";
import { privacyRequests } from "../../src/jobs/privacy-requests";
import { retention } from "../../src/jobs/retention";
import { runRetention } from "../../src/services/retention";
import { type MonthManifest, manifestKey, readManifest } from "../../src/services/retention/manifest";
import { readPart, restoreArchivedMonth } from "../../src/services/retention/restore";
import { testDb } from "./ingestion-support";

/**
 * Retention through the service (and its job) in the Workers runtime, with the real R2 binding miniflare gives
 * the Worker (ARCHIVE) and the suite's database. The database is shared with other files, which write rows at
 * today's date: these tests seed runs in 2021–2023 with explicit created_at and run retention as of dates in
 * those years, so their cut-offs reach only their own rows.
 */
const db = testDb();
const bucket = env.ARCHIVE as R2Bucket;
const ctx = (at: Date) => ({ db, now: () => at });
const DAY = 24 * 3_600_000;

async function newRepo(retentionDays?: number) {
  const [repo] = await db
    .insert(repos)
    .values({ owner: `retention-${crypto.randomUUID().slice(0, 8)}`, name: "runs" })
    .returning();
  if (retentionDays)
    await db.execute(
      sql`insert into repository_configs (repo_id, retention_days) values (${repo.id}, ${retentionDays})`,
    );
  return repo.id;
}

/**
 * Runs every `step` from `from` to `to` (created_at = started_at), alternating two test cases; one ingestion per
 * month (received at the month's start). Test case "fails" fails every run with failure output and carries a
 * last_failure_reason; "passes" passes.
 */
async function seedRuns(repoId: string, from: string, to: string, step: string) {
  await db.execute(sql`select anchorpipe_ensure_test_run_partitions(12, ${from.slice(0, 10)}::date)`);
  await db.execute(sql`
    insert into test_cases (repo_id, path, name, framework, last_failure_reason)
    values (${repoId}, 'src/a.test.ts', 'fails', 'vitest', 'AssertionError: boom'),
           (${repoId}, 'src/a.test.ts', 'passes', 'vitest', null)`);
  await db.execute(sql`
    insert into ingestions (repo_id, idempotency_key, commit_sha, run_id, framework, signature_scheme, tests_total,
      tests_failed, tests_skipped, payload_sha256, response, received_at, completed_at)
    select ${repoId}, 'key-' || to_char(m, 'YYYY-MM'), repeat('a', 40), 'ci-' || to_char(m, 'YYYY-MM'), 'vitest', 'v2',
      0, 0, 0, repeat('0', 64), '{"accepted": true}', m, m
    from generate_series(date_trunc('month', ${from}::timestamptz at time zone 'UTC') at time zone 'UTC',
      ${to}::timestamptz, '1 month') m`);
  await db.execute(sql`
    insert into test_runs (repo_id, test_case_id, ingestion_id, commit_sha, run_id, status, duration_ms, started_at,
      failure_details, metadata, created_at)
    select ${repoId}, tc.id, i.id, repeat('a', 40), i.run_id, case when tc.name = 'fails' then 'fail' else 'pass' end::test_run_status,
      (n * 7) % 500, t, case when tc.name = 'fails' then 'AssertionError: boom at ' || n end, jsonb_build_object('n', n), t
    from generate_series(${from}::timestamptz, ${to}::timestamptz, ${step}::interval) with ordinality as s(t, n)
    join test_cases tc on tc.repo_id = ${repoId} and tc.name = case when n % 2 = 0 then 'fails' else 'passes' end
    join ingestions i on i.repo_id = ${repoId}
      and i.received_at = date_trunc('month', t at time zone 'UTC') at time zone 'UTC'`);
}

async function runIds(repoId: string, before?: Date): Promise<string[]> {
  const result = await db.execute<{ id: string }>(
    before
      ? sql`select id from test_runs where repo_id = ${repoId} and created_at < ${before.toISOString()}::timestamptz order by id`
      : sql`select id from test_runs where repo_id = ${repoId} order by id`,
  );
  return result.rows.map((r) => r.id);
}

async function partitionExists(name: string): Promise<boolean> {
  const result = await db.execute<{ present: boolean }>(
    sql`select to_regclass(${`public.${name}`}) is not null as present`,
  );
  return result.rows[0].present;
}

/** Every archived run id of the repository's months, in archive order, after checking each part. */
async function archivedRunIds(
  repoId: string,
  months: string[],
): Promise<{ ids: string[]; manifests: MonthManifest[] }> {
  const ids: string[] = [];
  const manifests: MonthManifest[] = [];
  for (const month of months) {
    const manifest = await readManifest(bucket, repoId, month);
    expect(manifest, `manifest of ${month}`).not.toBeNull();
    if (!manifest) continue;
    manifests.push(manifest);
    let rows = 0;
    for (const part of manifest.parts) {
      // readPart checks the object's SHA-256 and run count against the manifest.
      const lines = await readPart(bucket, part);
      const runs = lines.filter((l) => l.kind === "test_run").map((l) => l.row);
      rows += runs.length;
      for (const run of runs) {
        expect(run.repo_id).toBe(repoId);
        expect(String(run.created_at).startsWith(month)).toBe(true);
        expect(lines.some((l) => l.kind === "test_case" && l.row.id === run.test_case_id)).toBe(true);
        expect(lines.some((l) => l.kind === "ingestion" && l.row.id === run.ingestion_id)).toBe(true);
        ids.push(run.id);
      }
      const object = await bucket.head(part.key);
      expect(object?.size).toBe(part.bytes);
    }
    expect(rows).toBe(manifest.rows);
  }
  return { ids, manifests };
}

describe("retention (ST-317)", () => {
  // Repository A keeps the default 30 days, B 10 days; runs every 12 hours from January to 20 April 2023.
  const scheduledTime = new Date("2023-04-20T03:17:00Z");
  const cutoffA = new Date(scheduledTime.getTime() - 30 * DAY); // 2023-03-21T03:17Z
  const cutoffB = new Date(scheduledTime.getTime() - 10 * DAY); // 2023-04-10T03:17Z
  let repoA = "";
  let repoB = "";
  let expiredA: string[] = [];

  it("archives runs past each repository's retention, then drops whole months and deletes the rest; recent runs stay", async () => {
    repoA = await newRepo();
    repoB = await newRepo(10);
    await seedRuns(repoA, "2023-01-01T00:00:00Z", "2023-04-20T00:00:00Z", "12 hours");
    await seedRuns(repoB, "2023-01-01T06:00:00Z", "2023-04-20T00:00:00Z", "12 hours");
    expiredA = await runIds(repoA, cutoffA);
    const expiredB = await runIds(repoB, cutoffB);
    const keptA = (await runIds(repoA)).filter((id) => !expiredA.includes(id));
    const keptB = (await runIds(repoB)).filter((id) => !expiredB.includes(id));
    await db.execute(sql`
      insert into telemetry_events (repo_id, event_type, event_timestamp) values
        (${repoA}, 'retention-test-old', ${new Date(scheduledTime.getTime() - 31 * DAY).toISOString()}),
        (${repoA}, 'retention-test-recent', ${new Date(scheduledTime.getTime() - 29 * DAY).toISOString()})`);
    await db.execute(sql`
      insert into notifications (repo_id, type, title, message, read, created_at) values
        (${repoA}, 'other', 'old read', 'm', true, ${new Date(scheduledTime.getTime() - 91 * DAY).toISOString()}),
        (${repoA}, 'other', 'old unread', 'm', false, ${new Date(scheduledTime.getTime() - 91 * DAY).toISOString()}),
        (${repoA}, 'other', 'recent read', 'm', true, ${new Date(scheduledTime.getTime() - 89 * DAY).toISOString()})`);
    await db.execute(sql`
      insert into audit_logs (action, subject, subject_id, created_at) values
        ('other', 'repo', ${repoA}, ${new Date(scheduledTime.getTime() - 366 * DAY).toISOString()}),
        ('other', 'repo', ${repoA}, ${new Date(scheduledTime.getTime() - 364 * DAY).toISOString()})`);

    const counts = await runRetention(ctx(scheduledTime), bucket, scheduledTime);

    expect(counts.complete).toBe(true);
    // The job covers the whole database, which other test files share: their old runs may expire too. This
    // repository pair's archive is checked run by run below.
    expect(counts.runsArchived).toBeGreaterThanOrEqual(expiredA.length + expiredB.length);
    // January and February are past both cut-offs: dropped whole. March holds A's runs within retention.
    expect(counts.partitionsDropped).toEqual(expect.arrayContaining(["test_runs_p2023_01", "test_runs_p2023_02"]));
    expect(await partitionExists("test_runs_p2023_02")).toBe(false);
    expect(await partitionExists("test_runs_p2023_03")).toBe(true);
    expect(await runIds(repoA)).toEqual(keptA.sort());
    expect(await runIds(repoB)).toEqual(keptB.sort());
    // Kept across the month boundary: A's runs from 21 March on, B's from 10 April on.
    const oldestKept = await db.execute<{ a: number; b: number }>(sql`
      select (select extract(epoch from min(created_at)) * 1000 from test_runs where repo_id = ${repoA})::float8 as a,
             (select extract(epoch from min(created_at)) * 1000 from test_runs where repo_id = ${repoB})::float8 as b`);
    expect(Number(oldestKept.rows[0].a)).toBeGreaterThanOrEqual(cutoffA.getTime());
    expect(Number(oldestKept.rows[0].a)).toBeLessThan(cutoffA.getTime() + DAY / 2);
    expect(Number(oldestKept.rows[0].b)).toBeGreaterThanOrEqual(cutoffB.getTime());
    expect(counts.runsDeleted).toBeGreaterThan(0);

    // The archive: complete months, the partial month up to the cut-off, every expired run exactly once.
    const archivedA = await archivedRunIds(repoA, ["2023-01", "2023-02", "2023-03"]);
    expect(archivedA.ids.sort()).toEqual([...expiredA].sort());
    expect(archivedA.manifests.map((m) => m.complete)).toEqual([true, true, false]);
    expect(archivedA.manifests[2].archivedUntil).toBe(cutoffA.toISOString());
    expect(archivedA.manifests[0]).toMatchObject({ repoId: repoA, month: "2023-01", schemaVersion: 1, pending: null });
    expect(archivedA.manifests[0].firstCreatedAt?.startsWith("2023-01-01T00:00:00")).toBe(true);
    const archivedB = await archivedRunIds(repoB, ["2023-01", "2023-02", "2023-03", "2023-04"]);
    expect(archivedB.ids.sort()).toEqual([...expiredB].sort());
    expect(await bucket.get(manifestKey(repoA, "2023-04"))).toBeNull();

    // What hangs off the runs.
    const rest = await db.execute<{ ingestions: string[]; reasons: (string | null)[] }>(sql`
      select array(select run_id from ingestions where repo_id = ${repoA} order by run_id) as ingestions,
             array(select last_failure_reason from test_cases where repo_id = ${repoA} order by name) as reasons`);
    expect(rest.rows[0].ingestions).toEqual(["ci-2023-03", "ci-2023-04"]);
    // A's failing test still has failing runs after the cut-off: its reason stays.
    expect(rest.rows[0].reasons).toEqual(["AssertionError: boom", null]);
    const others = await db.execute<{ telemetry: string[]; notifications: string[]; audit: number }>(sql`
      select array(select event_type from telemetry_events where repo_id = ${repoA}) as telemetry,
             array(select title from notifications where repo_id = ${repoA} order by title) as notifications,
             (select count(*)::int from audit_logs where subject_id = ${repoA} and action = 'other') as audit`);
    expect(others.rows[0]).toEqual({
      telemetry: ["retention-test-recent"],
      notifications: ["old unread", "recent read"],
      audit: 1,
    });
    expect(counts.telemetryDeleted).toBeGreaterThanOrEqual(1);
    expect(counts.readNotificationsDeleted).toBeGreaterThanOrEqual(1);
    expect(counts.auditLogsPurged).toBeGreaterThanOrEqual(1);

    const audit = await db.execute<{ metadata: Record<string, unknown> }>(sql`
      select metadata from audit_logs where action = 'retention_purge'
        and metadata->>'scheduledTime' = ${scheduledTime.toISOString()}`);
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0].metadata).toMatchObject({
      runsArchived: counts.runsArchived,
      runsDeleted: counts.runsDeleted,
    });

    // Once the failing test's last failing run has gone, its failure reason goes too (ADR 0004).
    const later = new Date("2023-05-25T03:17:00Z");
    const second = await runRetention(ctx(later), bucket, later);
    expect(second.failureReasonsCleared).toBeGreaterThanOrEqual(1);
    const reasons = await db.execute<{ reason: string | null }>(
      sql`select last_failure_reason as reason from test_cases where repo_id = ${repoA} and name = 'fails'`,
    );
    expect(reasons.rows[0].reason).toBeNull();
    // The second run continued March's archive where the first stopped: still every run exactly once.
    const march = await archivedRunIds(repoA, ["2023-03"]);
    expect(new Set(march.ids).size).toBe(march.ids.length);
  });

  it("restores an archived month, idempotently, even after its partition was dropped", async () => {
    const january = await readManifest(bucket, repoA, "2023-01");
    expect(january?.rows).toBeGreaterThan(0);
    expect(await partitionExists("test_runs_p2023_01")).toBe(false);

    const restored = await restoreArchivedMonth(ctx(scheduledTime), bucket, { repoId: repoA, month: "2023-01" });
    expect(restored).toMatchObject({
      archivedRuns: january?.rows,
      runsRestored: january?.rows,
      ingestionsRecreated: 1,
    });
    expect(restored.testCasesRecreated).toBe(0);
    const back = await db.execute<{ count: number; failures: number }>(sql`
      select count(*)::int as count, count(failure_details)::int as failures from test_runs
      where repo_id = ${repoA} and created_at < '2023-02-01T00:00:00Z'`);
    expect(back.rows[0].count).toBe(january?.rows);
    expect(back.rows[0].failures).toBeGreaterThan(0);
    // The restored rows are the archived ones, column for column.
    const sample = await db.execute<{ line: string }>(sql`
      select to_jsonb(r)::text as line from test_runs r where repo_id = ${repoA} and created_at < '2023-02-01T00:00:00Z'
      order by id limit 1`);
    const lines = await readPart(bucket, january?.parts[0] as MonthManifest["parts"][number]);
    const archivedRow = lines.find((l) => l.kind === "test_run" && l.row.id === JSON.parse(sample.rows[0].line).id);
    const live = JSON.parse(sample.rows[0].line);
    expect({ ...live, ingestion_id: undefined }).toEqual({ ...archivedRow?.row, ingestion_id: undefined });

    const again = await restoreArchivedMonth(ctx(scheduledTime), bucket, { repoId: repoA, month: "2023-01" });
    expect(again).toMatchObject({ runsRestored: 0, ingestionsRecreated: 0, testCasesRecreated: 0 });

    // A later retention run removes them again without archiving anything twice.
    const parts = january?.parts.length;
    const rerun = await runRetention(ctx(scheduledTime), bucket, scheduledTime);
    expect(rerun.runsArchived).toBe(0);
    expect((await readManifest(bucket, repoA, "2023-01"))?.parts.length).toBe(parts);
    const left = await db.execute<{ count: number }>(
      sql`select count(*)::int as count from test_runs where repo_id = ${repoA} and created_at < '2023-02-01T00:00:00Z'`,
    );
    expect(left.rows[0].count).toBe(0);
  });

  it("a run cut short by its budget finishes on the next run and archives nothing twice", async () => {
    const at = new Date("2022-05-10T03:17:00Z");
    const repo = await newRepo(30);
    await seedRuns(repo, "2022-01-01T00:00:00Z", "2022-05-09T00:00:00Z", "6 hours");
    const expired = await runIds(repo, new Date(at.getTime() - 30 * DAY));
    const limits = { pageRows: 40, partMaxRows: 100, partMaxBytes: 1024 * 1024 };

    // Out of time before it starts (the wall-clock budget): nothing archived, nothing removed.
    const none = await runRetention(ctx(at), bucket, at, { budgetMs: 0, limits });
    expect(none).toMatchObject({ complete: false, partsArchived: 0, runsDeleted: 0, partitionsDropped: [] });
    expect(await runIds(repo, new Date(at.getTime() - 30 * DAY))).toEqual(expired.sort());
    const first = await runRetention(ctx(at), bucket, at, { maxParts: 1, limits });
    expect(first).toMatchObject({ complete: false, partsArchived: 1, runsArchived: 100, partitionsDropped: [] });
    // Nothing unarchived is removed: January is archived in part only, so nothing of it is deleted yet.
    expect((await runIds(repo, new Date("2022-02-01T00:00:00Z"))).length).toBe(124);
    const pending = await readManifest(bucket, repo, "2022-01");
    expect(pending).toMatchObject({ complete: false, rows: 100, archivedUntil: "2022-01-01T00:00:00.000Z" });
    expect(pending?.pending?.afterId).toBe(pending?.parts[0].lastId);

    const second = await runRetention(ctx(at), bucket, at, { maxParts: 3, limits });
    expect(second.complete).toBe(false);
    const third = await runRetention(ctx(at), bucket, at, { limits });
    expect(third.complete).toBe(true);
    expect(first.runsArchived + second.runsArchived + third.runsArchived).toBe(expired.length);

    const archived = await archivedRunIds(repo, ["2022-01", "2022-02", "2022-03", "2022-04"]);
    expect(archived.ids.length).toBe(expired.length);
    expect(archived.ids.sort()).toEqual([...expired].sort());
    expect(await runIds(repo, new Date(at.getTime() - 30 * DAY))).toEqual([]);
    expect((await runIds(repo)).length).toBeGreaterThan(0);

    // Nothing left to do: a fourth run writes no part.
    const fourth = await runRetention(ctx(at), bucket, at, { limits });
    expect(fourth).toMatchObject({ complete: true, partsArchived: 0, runsArchived: 0, runsDeleted: 0 });
  });

  it("runs as the daily job with the Worker's bindings, and is skipped without a bucket", async () => {
    const at = new Date("2021-06-10T03:17:00Z");
    const repo = await newRepo(30);
    await seedRuns(repo, "2021-03-01T00:00:00Z", "2021-06-09T00:00:00Z", "1 day");
    const expired = await runIds(repo, new Date(at.getTime() - 30 * DAY));
    const config = loadConfig(env);
    const result = await retention.run({ config, env, db, scheduledTime: at });
    expect(result.outcome).toBe("succeeded");
    expect(result.counts).toMatchObject({ runsArchived: expired.length, complete: 1 });
    expect(await runIds(repo, new Date(at.getTime() - 30 * DAY))).toEqual([]);

    const withoutBucket = await retention.run({ config, env: { ...env, ARCHIVE: undefined }, db, scheduledTime: at });
    expect(withoutBucket.outcome).toBe("skipped");
  });

  it("runs from the Worker's scheduled() on the daily trigger and is recorded in job_runs", async () => {
    const at = new Date("2020-06-10T03:17:00Z");
    const repo = await newRepo(30);
    await seedRuns(repo, "2020-03-01T00:00:00Z", "2020-06-09T00:00:00Z", "1 day");
    const expired = await runIds(repo, new Date(at.getTime() - 30 * DAY));
    // The rescoring and the data subject requests share the daily trigger; as of 2020 they would rescore the
    // shared database's repositories and carry out other files' requests against this file's bucket.
    const recompute = vi.spyOn(flakeRecompute, "run").mockResolvedValue({ outcome: "skipped", note: "stubbed" });
    const privacy = vi.spyOn(privacyRequests, "run").mockResolvedValue({ outcome: "skipped", note: "stubbed" });
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      await worker.scheduled(createScheduledController({ cron: "17 3 * * *", scheduledTime: at.getTime() }), env);
    } finally {
      recompute.mockRestore();
      privacy.mockRestore();
      log.mockRestore();
    }
    const ledger = await db.execute<{ outcome: string; counts: Record<string, number> }>(sql`
      select outcome, counts from job_runs where job = 'retention' and scheduled_at = ${at.toISOString()}::timestamptz`);
    expect(ledger.rows).toEqual([
      { outcome: "succeeded", counts: expect.objectContaining({ runsArchived: expired.length, complete: 1 }) },
    ]);
    expect(await runIds(repo, new Date(at.getTime() - 30 * DAY))).toEqual([]);
    const archived = await archivedRunIds(repo, ["2020-03", "2020-04", "2020-05"]);
    expect(archived.ids.sort()).toEqual([...expired].sort());
  });
});
