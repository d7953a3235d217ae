import { sql } from "drizzle-orm";
import { sha256Hex } from "../../lib/encoding";
import type { ServiceContext } from "../context";
import { ensureTestRunPartitions } from "../partitions";
import { type ArchiveBucket, ArchiveError, type ArchivePart, monthBounds, readManifest } from "./manifest";

/** Runs inserted per statement. */
const RESTORE_BATCH = 1_000;

export interface RestoreCounts {
  parts: number;
  /** Runs in the archive (the manifest's count, checked against the parts). */
  archivedRuns: number;
  /** Runs inserted; the others were in the database already. */
  runsRestored: number;
  testCasesRecreated: number;
  ingestionsRecreated: number;
}

interface Line {
  kind: "test_case" | "ingestion" | "test_run";
  row: Record<string, unknown> & { id: string; test_case_id?: string; ingestion_id?: string };
}

/**
 * Puts an archived month of one repository's test runs back into test_runs. Every part's SHA-256 and run count
 * are checked against the manifest before anything of it is written. Idempotent: rows already present are left
 * alone (ON CONFLICT DO NOTHING), so a restore can be repeated or resumed after a failure.
 *
 * Runs need their test case and ingestion. Test cases are never removed by retention and ingestions are removed
 * once their runs are gone, so either may be missing: they are recreated from the archive (a test case with
 * its identity only — path, name, framework, suite, tags; its score and failure reason are not restored). When a
 * row with the same natural key exists under another id (the test case was deleted and seen again, or a client
 * re-sent the same idempotency key after the first upload expired), the runs are attached to that row.
 *
 * The month's partition is created if retention dropped it. Restored runs are past retention: the next retention
 * run removes them again (without archiving them twice) unless the repository's retention_days is raised first.
 */
export async function restoreArchivedMonth(
  ctx: ServiceContext,
  bucket: ArchiveBucket,
  input: { repoId: string; month: string },
): Promise<RestoreCounts> {
  const manifest = await readManifest(bucket, input.repoId, input.month);
  if (!manifest) throw new ArchiveError(`no archive of repository ${input.repoId} for ${input.month}`);
  const { start } = monthBounds(input.month);
  const repo = await ctx.db.execute(sql`select 1 from repos where id = ${input.repoId}::uuid`);
  if (!repo.rows.length)
    throw new ArchiveError(`repository ${input.repoId} does not exist; create it before restoring`);
  await ensureTestRunPartitions(ctx.db, 0, start);
  const counts: RestoreCounts = {
    parts: 0,
    archivedRuns: manifest.rows,
    runsRestored: 0,
    testCasesRecreated: 0,
    ingestionsRecreated: 0,
  };
  let seenRuns = 0;
  for (const part of manifest.parts) {
    const lines = await readPart(bucket, part);
    seenRuns += await restorePart(ctx, lines, counts);
    counts.parts++;
  }
  if (seenRuns !== manifest.rows)
    throw new ArchiveError(`the parts hold ${seenRuns} runs, the manifest says ${manifest.rows}`);
  return counts;
}

/** A part's lines, after checking its checksum and run count. A part is bounded (archive.ts), so it is read whole. */
export async function readPart(bucket: ArchiveBucket, part: ArchivePart): Promise<Line[]> {
  const object = await bucket.get(part.key);
  if (!object) throw new ArchiveError(`${part.key} is missing from the archive`);
  const bytes = new Uint8Array(await object.arrayBuffer());
  const sha256 = await sha256Hex(bytes);
  if (sha256 !== part.sha256)
    throw new ArchiveError(`${part.key}: SHA-256 ${sha256}, the manifest says ${part.sha256}`);
  const text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  const lines = text
    .split("\n")
    .filter((line) => line.length)
    .map((line) => JSON.parse(line) as Line);
  const runs = lines.filter((l) => l.kind === "test_run").length;
  if (runs !== part.rows) throw new ArchiveError(`${part.key} holds ${runs} runs, the manifest says ${part.rows}`);
  return lines;
}

async function restorePart(ctx: ServiceContext, lines: Line[], counts: RestoreCounts): Promise<number> {
  const cases = new Map<string, Line["row"]>();
  const ingestions = new Map<string, Line["row"]>();
  let runs: Line["row"][] = [];
  let total = 0;
  const flush = async () => {
    if (!runs.length) return;
    const neededCases = [...new Set(runs.map((r) => r.test_case_id as string))].map((id) => cases.get(id));
    const neededIngestions = [...new Set(runs.map((r) => r.ingestion_id as string))].map((id) => ingestions.get(id));
    if (neededCases.includes(undefined) || neededIngestions.includes(undefined))
      throw new ArchiveError("a run refers to a test case or ingestion its part does not hold");
    const [recreatedCases, recreatedIngestions, restored] = await insertBatch(ctx, runs, neededCases, neededIngestions);
    counts.testCasesRecreated += recreatedCases;
    counts.ingestionsRecreated += recreatedIngestions;
    counts.runsRestored += restored;
    total += runs.length;
    runs = [];
  };
  for (const line of lines) {
    if (line.kind === "test_case") cases.set(line.row.id, line.row);
    else if (line.kind === "ingestion") ingestions.set(line.row.id, line.row);
    else if (line.kind === "test_run") {
      runs.push(line.row);
      if (runs.length >= RESTORE_BATCH) await flush();
    } else throw new ArchiveError(`unknown line kind ${(line as { kind: unknown }).kind}`);
  }
  await flush();
  return total;
}

/** Test cases, ingestions, then runs (mapped to the rows that hold their natural keys), in one transaction. */
async function insertBatch(
  { db }: ServiceContext,
  runs: unknown[],
  cases: unknown[],
  ingestions: unknown[],
): Promise<[number, number, number]> {
  const [insertedCases, insertedIngestions, insertedRuns] = await db.batch([
    db.execute<{ count: number }>(sql`
      with added as (
        insert into test_cases (id, repo_id, path, name, framework, suite, tags, first_seen_at, last_seen_at, created_at)
        select id, repo_id, path, name, framework, suite, coalesce(tags, '{}'), first_seen_at, first_seen_at, created_at
        from jsonb_populate_recordset(null::test_cases, ${JSON.stringify(cases)}::jsonb)
        on conflict do nothing
        returning 1)
      select count(*)::int as count from added`),
    db.execute<{ count: number }>(sql`
      with added as (
        insert into ingestions
        select * from jsonb_populate_recordset(null::ingestions, ${JSON.stringify(ingestions)}::jsonb)
        on conflict do nothing
        returning 1)
      select count(*)::int as count from added`),
    db.execute<{ count: number }>(sql`
      with archived_cases as (
        select * from jsonb_populate_recordset(null::test_cases, ${JSON.stringify(cases)}::jsonb)
      ), archived_ingestions as (
        select * from jsonb_populate_recordset(null::ingestions, ${JSON.stringify(ingestions)}::jsonb)
      ), added as (
        insert into test_runs (id, repo_id, test_case_id, ingestion_id, commit_sha, branch, pull_request, run_id, status,
          duration_ms, started_at, rerun_count, failure_details, environment_hash, metadata, created_at)
        select r.id, r.repo_id, tc.id, i.id, r.commit_sha, r.branch, r.pull_request, r.run_id, r.status,
          r.duration_ms, r.started_at, r.rerun_count, r.failure_details, r.environment_hash, r.metadata, r.created_at
        from jsonb_populate_recordset(null::test_runs, ${JSON.stringify(runs)}::jsonb) r
        join archived_cases ac on ac.id = r.test_case_id
        join test_cases tc on tc.repo_id = ac.repo_id and tc.path = ac.path and tc.name = ac.name
          and tc.framework = ac.framework
        join archived_ingestions ai on ai.id = r.ingestion_id
        join ingestions i on i.repo_id = ai.repo_id and i.idempotency_key = ai.idempotency_key
        on conflict do nothing
        returning 1)
      select count(*)::int as count from added`),
  ]);
  const count = (r: { rows: { count: number }[] }) => Number(r.rows[0]?.count ?? 0);
  return [count(insertedCases), count(insertedIngestions), count(insertedRuns)];
}
