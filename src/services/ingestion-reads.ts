import { sql } from "drizzle-orm";
import type { ServiceContext } from "./context";
import { cursorTime } from "./keyset";

/** Completed uploads only: one still being written is not there yet. */
export type IngestionView = {
  id: string;
  runId: string;
  commitSha: string;
  branch: string | null;
  pullRequest: string | null;
  framework: string;
  signatureScheme: string;
  testsTotal: number;
  testsFailed: number;
  testsSkipped: number;
  receivedAt: Date;
  completedAt: Date;
};

type Row = Omit<IngestionView, "receivedAt" | "completedAt"> & {
  receivedAt: string;
  completedAt: string;
  cursorAt: string;
};

const columns = sql`id, run_id as "runId", commit_sha as "commitSha", branch, pull_request as "pullRequest", framework,
  signature_scheme as "signatureScheme", tests_total as "testsTotal", tests_failed as "testsFailed",
  tests_skipped as "testsSkipped", received_at as "receivedAt", completed_at as "completedAt",
  ${cursorTime(sql`received_at`)} as "cursorAt"`;

const view = (row: Row): IngestionView & { cursorAt: string } => ({
  ...row,
  receivedAt: new Date(row.receivedAt),
  completedAt: new Date(row.completedAt),
});

/** Newest first, keyed by (received_at, id). */
export async function listIngestions(
  ctx: ServiceContext,
  repoId: string,
  page: { limit: number; after: [string, string] | null },
): Promise<(IngestionView & { cursorAt: string })[]> {
  const after = page.after;
  const result = await ctx.db.execute<Row>(sql`
    select ${columns} from ingestions
    where repo_id = ${repoId} and completed_at is not null
      ${after ? sql`and (received_at, id) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``}
    order by received_at desc, id desc limit ${page.limit}`);
  return result.rows.map(view);
}

export async function getIngestion(
  ctx: ServiceContext,
  repoId: string,
  ingestionId: string,
): Promise<(IngestionView & { flakyCandidates: number }) | null> {
  const result = await ctx.db.execute<Row & { flakyCandidates: number | null }>(sql`
    select ${columns}, (response->'summary'->>'flaky_candidates')::int as "flakyCandidates" from ingestions
    where repo_id = ${repoId} and id = ${ingestionId} and completed_at is not null`);
  const row = result.rows[0];
  if (!row) return null;
  const { cursorAt: _, ...ingestion } = view(row);
  return { ...ingestion, flakyCandidates: row.flakyCandidates ?? 0 };
}
