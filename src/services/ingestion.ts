import { sql } from "drizzle-orm";
import type { SignatureScheme } from "../contract/ingestion";
import type { NormalizedResult } from "../ingestion/normalize";
import { findSqlState, sqlStateKind } from "../lib/db-errors";
import type { ServiceContext } from "./context";
import { SCORING_SETTINGS } from "./scoring/rescore";
import { uploadAsOf, uploadScoringQuery } from "./scoring/upload-scoring";

/**
 * Stores one upload "atomically from the client's point of view" over Neon's
 * HTTP driver, which has no interactive transactions.
 *
 * The ingestions row is the lock and the ledger. It is inserted with ON
 * CONFLICT DO NOTHING on (repo_id, idempotency_key), so of two concurrent
 * identical uploads one waits for the other and then finds the row. Runs are
 * written only while that row is incomplete and has the same payload hash,
 * with ids derived from the ingestion id and the result's position, and
 * created_at fixed to the ingestion's received_at, so writing a chunk twice
 * inserts nothing the second time. The row is marked complete together with
 * the telemetry event, the audit rows and the secret's last_used_at, in one
 * statement. Hence:
 *   - a small upload is one HTTP request (one db.batch, one transaction);
 *   - a large one is split into requests under Neon's 10 MiB limit, and if
 *     any fails, a retry with the same key resumes and stores each row once;
 *   - the client hears "success" only after the completing statement ran.
 */

/** Budget for the results JSON of one HTTP request, well under Neon's 10 MiB request limit. */
export const CHUNK_BUDGET_BYTES = 6 * 1024 * 1024;

export interface IngestionSummary {
  tests_parsed: number;
  tests_failed: number;
  tests_skipped: number;
  /** Tests of this upload that its scoring left flaky or highly flaky. */
  flaky_candidates: number;
  /** Results that passed only after failing first: the signature of a flaky test. */
  retry_recoveries: number;
  /** Attempts behind the results: each result plus its reruns (a report's retries are folded into results). */
  attempts: number;
}

export interface IngestionResponse {
  runId: string;
  ingestionId: string;
  message: string;
  summary: IngestionSummary;
  isDuplicate: boolean;
}

export interface IngestionInput {
  repoId: string;
  idempotencyKey: string;
  commitSha: string;
  runId: string;
  framework: string;
  branch: string | null;
  pullRequest: string | null;
  environment: Record<string, string> | null;
  environmentHash: string | null;
  metadata: Record<string, unknown> | null;
  /** How the upload was authenticated: a signature scheme, or the GitHub App fetching the reports itself. */
  scheme: SignatureScheme | "github-app";
  /** The signing secret that verified it; null for the GitHub App, which needs none. */
  secretId: string | null;
  keyId: string | null;
  payloadSha256: string;
  results: NormalizedResult[];
  userAgent: string | null;
  ipAddress: string | null;
}

export type StoreOutcome =
  | { kind: "stored"; response: IngestionResponse }
  | { kind: "duplicate"; response: IngestionResponse }
  | { kind: "conflict" };

interface LedgerRow {
  id: string;
  payload_sha256: string;
  response: IngestionResponse;
  completed_at: string | null;
}

function summarize(results: NormalizedResult[]): IngestionSummary {
  return {
    tests_parsed: results.length,
    tests_failed: results.filter((r) => r.status === "fail").length,
    tests_skipped: results.filter((r) => r.status === "skip").length,
    // Filled in by the upload's scoring, in the batch that completes it.
    flaky_candidates: 0,
    retry_recoveries: results.filter((r) => r.status === "pass" && r.rerunCount > 0).length,
    attempts: results.reduce((sum, r) => sum + 1 + r.rerunCount, 0),
  };
}

/** Results in stored form, numbered across the whole upload, cut into request-sized chunks. */
export function chunkResults(results: NormalizedResult[], budget = CHUNK_BUDGET_BYTES): string[] {
  const encoder = new TextEncoder();
  const chunks: string[] = [];
  let current: string[] = [];
  let size = 0;
  for (const [ord, r] of results.entries()) {
    const row = JSON.stringify({
      ord,
      path: r.path,
      name: r.name,
      status: r.status,
      started_at: r.startedAt,
      duration_ms: r.durationMs,
      failure_details: r.failureDetails,
      tags: r.tags,
      metadata: r.metadata,
      rerun_count: r.rerunCount,
      suite: r.suite,
    });
    // The chunk travels as a JSON string inside the request's JSON: escaping can double it.
    const rowSize = encoder.encode(JSON.stringify(row)).length;
    if (current.length > 0 && size + rowSize > budget) {
      chunks.push(`[${current.join(",")}]`);
      current = [];
      size = 0;
    }
    current.push(row);
    size += rowSize + 1;
  }
  if (current.length > 0) chunks.push(`[${current.join(",")}]`);
  return chunks;
}

export async function storeIngestion(
  ctx: ServiceContext,
  input: IngestionInput,
  chunkBudget = CHUNK_BUDGET_BYTES,
): Promise<StoreOutcome> {
  const { db } = ctx;
  const now = ctx.now();
  const ingestionId = crypto.randomUUID();
  const summary = summarize(input.results);
  const response: IngestionResponse = {
    runId: input.runId,
    ingestionId,
    message: "Test report received",
    summary,
    isDuplicate: false,
  };
  const chunks = chunkResults(input.results, chunkBudget);
  const mine = sql`repo_id = ${input.repoId} and idempotency_key = ${input.idempotencyKey}`;
  const pending = sql`${mine} and payload_sha256 = ${input.payloadSha256} and completed_at is null`;

  const insertLedger = db.execute(sql`
    insert into ingestions (id, repo_id, idempotency_key, commit_sha, run_id, framework, branch, pull_request,
      environment, environment_hash, signature_scheme, tests_total, tests_failed, tests_skipped, payload_sha256,
      response, received_at)
    values (${ingestionId}, ${input.repoId}, ${input.idempotencyKey}, ${input.commitSha}, ${input.runId},
      ${input.framework}, ${input.branch}, ${input.pullRequest}, ${jsonParam(input.environment)}::jsonb,
      ${input.environmentHash}, ${input.scheme}, ${summary.tests_parsed}, ${summary.tests_failed},
      ${summary.tests_skipped}, ${input.payloadSha256}, ${JSON.stringify(response)}::jsonb, ${now.toISOString()})
    on conflict (repo_id, idempotency_key) do nothing`);

  const writeChunk = (chunk: string) =>
    db.execute(sql`
      with ing as (
        select id, received_at from ingestions where ${pending}
      ), input as (
        select * from jsonb_to_recordset(${chunk}::jsonb) as t(ord int, path text, name text,
          status test_run_status, started_at timestamptz, duration_ms int, failure_details text, tags text[],
          metadata jsonb, rerun_count int, suite text)
      ), cases as (
        insert into test_cases as tc (repo_id, path, name, framework, suite, tags, last_failure_reason,
          first_seen_at, last_seen_at, updated_at)
        select distinct on (path, name) ${input.repoId}::uuid, path, name, ${input.framework}, suite,
          coalesce(tags, '{}'), case when status = 'fail' then left(failure_details, 1000) end,
          ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz
        from input
        where exists (select 1 from ing)
        -- One row per test case, the last result winning; sorted so that concurrent uploads lock in one order.
        order by path, name, ord desc
        on conflict (repo_id, path, name, framework) do update set
          last_seen_at = excluded.last_seen_at,
          updated_at = excluded.updated_at,
          suite = coalesce(excluded.suite, tc.suite),
          tags = case when excluded.tags = '{}' then tc.tags else excluded.tags end,
          last_failure_reason = coalesce(excluded.last_failure_reason, tc.last_failure_reason)
        returning id, path, name
      )
      insert into test_runs (id, repo_id, test_case_id, ingestion_id, commit_sha, branch, pull_request, run_id,
        status, duration_ms, started_at, rerun_count, failure_details, environment_hash, metadata, created_at)
      select md5(ing.id::text || ':' || input.ord)::uuid, ${input.repoId}::uuid, cases.id, ing.id,
        ${input.commitSha}, ${input.branch}, ${input.pullRequest}, ${input.runId}, input.status, input.duration_ms,
        input.started_at, coalesce(input.rerun_count, 0), input.failure_details, ${input.environmentHash},
        input.metadata, ing.received_at
      from input join cases on cases.path = input.path and cases.name = input.name cross join ing
      on conflict (id, created_at) do nothing`);

  const auditMeta = {
    ingestionId,
    runId: input.runId,
    scheme: input.scheme,
    keyId: input.keyId,
    tests: summary.tests_parsed,
  };
  const complete = db.execute(sql`
    with done as (
      update ingestions set completed_at = ${now.toISOString()} where ${pending} returning id
    ), telemetry as (
      insert into telemetry_events (repo_id, event_type, event_data)
      select ${input.repoId}::uuid, 'ingestion.completed', ${JSON.stringify({
        ...summary,
        framework: input.framework,
        scheme: input.scheme,
        metadata: input.metadata,
      })}::jsonb from done
    ), audit as (
      insert into audit_logs (action, subject, subject_id, description, metadata, request_id, user_agent, ip_address)
      select action::audit_action, 'repo', ${input.repoId}, description, ${JSON.stringify(auditMeta)}::jsonb,
        ${ctx.requestId ?? null}, ${input.userAgent}, ${input.ipAddress}::inet
      from done cross join (values
        ('hmac_auth_success', 'upload signature verified'),
        ('ingestion_accepted', 'test results stored')) as a(action, description)
      where action <> 'hmac_auth_success' or ${input.secretId}::uuid is not null
    ), touched as (
      update hmac_secrets set last_used_at = ${now.toISOString()}
      where id = ${input.secretId} and exists (select 1 from done)
    )
    select count(*)::int as completed from done`);

  // Scores move with the upload that caused them: rescoring, notifications and summary.flaky_candidates run
  // in the batch that completes the upload, after the completion (so the scoring counts it).
  const asOf = uploadAsOf(input.results, now);
  const scoreUpload = (id: string) => [
    db.execute(SCORING_SETTINGS),
    db.execute(uploadScoringQuery({ repoId: input.repoId, ingestionId: id, asOf, completedAt: now })),
  ];

  const readLedger = db.execute<Record<string, unknown>>(
    sql`select id, payload_sha256, response, completed_at from ingestions where ${mine}`,
  );

  // First request: claim (or find) the ledger row and write the first chunk; when the
  // upload fits in one chunk, also complete it. Each further chunk takes a request.
  const last = chunks.length - 1;
  let completedByUs: boolean;
  let ledger: LedgerRow;
  if (last === 0) {
    // One batch is one transaction: if PostgreSQL refuses a value, nothing at all was written.
    const [, , completed, , , read] = await db
      .batch([insertLedger, writeChunk(chunks[0]), complete, ...scoreUpload(ingestionId), readLedger])
      .catch(refusedOr);
    completedByUs = completed.rows[0].completed === 1;
    ledger = read.rows[0] as unknown as LedgerRow;
  } else {
    const [, , read] = await db.batch([insertLedger, writeChunk(chunks[0]), readLedger]).catch(refusedOr);
    ledger = read.rows[0] as unknown as LedgerRow;
    completedByUs = false;
    if (ledger.payload_sha256 === input.payloadSha256 && ledger.completed_at === null) {
      try {
        for (const chunk of chunks.slice(1, last)) await writeChunk(chunk);
        const [, completed, , , reread] = await db.batch([
          writeChunk(chunks[last]),
          complete,
          ...scoreUpload(ledger.id),
          readLedger,
        ]);
        completedByUs = completed.rows[0].completed === 1;
        ledger = reread.rows[0] as unknown as LedgerRow;
      } catch (error) {
        // A refused value fails every retry the same way: remove what the earlier chunks wrote, so the
        // upload is not half there, and say why. Any other failure leaves the rows for a retry to resume
        // (and the hourly cleanup job removes what nobody resumes).
        if (sqlStateKind(findSqlState(error)) === "data") await abandonIngestion(ctx, input).catch(() => {});
        refusedOr(error);
      }
    }
  }

  if (ledger.payload_sha256 !== input.payloadSha256) return { kind: "conflict" };
  if (ledger.completed_at === null) throw new IngestionIncompleteError(ledger.id);
  const stored = (
    typeof ledger.response === "string" ? JSON.parse(ledger.response) : ledger.response
  ) as IngestionResponse;
  return completedByUs
    ? { kind: "stored", response: stored }
    : { kind: "duplicate", response: { ...stored, isDuplicate: true } };
}

/** Rethrows a refused value as IngestionRefusedError, anything else as it is. */
function refusedOr(error: unknown): never {
  const sqlState = findSqlState(error);
  if (sqlState && sqlStateKind(sqlState) === "data") throw new IngestionRefusedError(sqlState, error);
  throw error;
}

/**
 * Removes an incomplete upload: the test cases it created that no other
 * upload has runs of, then its ledger row, whose runs go with it (ON DELETE
 * CASCADE). One batch, so it is all or nothing.
 */
async function abandonIngestion(ctx: ServiceContext, input: IngestionInput): Promise<void> {
  const pending = sql`repo_id = ${input.repoId} and idempotency_key = ${input.idempotencyKey}
    and payload_sha256 = ${input.payloadSha256} and completed_at is null`;
  await ctx.db.batch([
    ctx.db.execute(sql`
      with ing as (select id, received_at from ingestions where ${pending})
      delete from test_cases tc using ing
      where tc.repo_id = ${input.repoId} and tc.first_seen_at = ing.received_at
        and not exists (
          select 1 from test_runs r where r.test_case_id = tc.id and r.ingestion_id <> ing.id)`),
    ctx.db.execute(sql`delete from ingestions where ${pending}`),
  ]);
}

/**
 * Removes uploads left incomplete since before `cutoff` (a client that gave
 * up after a failed chunk), with their runs and the test cases only they
 * created. At most `limit` uploads per call; returns how many were removed.
 */
export async function removeIncompleteIngestions(
  ctx: ServiceContext,
  options: { cutoff: Date; limit?: number },
): Promise<number> {
  const result = await ctx.db.execute<{ removed: number }>(sql`
    with stale as (
      select id, repo_id, received_at from ingestions
      where completed_at is null and received_at < ${options.cutoff.toISOString()}
      order by received_at limit ${options.limit ?? 500}
    ), cases as (
      delete from test_cases tc using stale
      where tc.repo_id = stale.repo_id and tc.first_seen_at = stale.received_at
        and not exists (
          select 1 from test_runs r where r.test_case_id = tc.id and r.ingestion_id not in (select id from stale))
    ), gone as (
      delete from ingestions where id in (select id from stale) returning id
    )
    select count(*)::int as removed from gone`);
  return result.rows[0]?.removed ?? 0;
}

/** PostgreSQL refused a value of the upload (SQLSTATE class 22, 23 or 54); nothing of it is stored. */
export class IngestionRefusedError extends Error {
  constructor(
    readonly sqlState: string,
    cause: unknown,
  ) {
    super(`the database refused a value of the upload (SQLSTATE ${sqlState})`, { cause });
    this.name = "IngestionRefusedError";
  }
}

/** Another request holds the same upload half-written; the client should retry. */
export class IngestionIncompleteError extends Error {
  constructor(readonly ingestionId: string) {
    super(`ingestion ${ingestionId} is not complete yet`);
    this.name = "IngestionIncompleteError";
  }
}

function jsonParam(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}
