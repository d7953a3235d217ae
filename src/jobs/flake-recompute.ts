import { sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { describeFailure } from "../lib/db-errors";
import { log } from "../lib/logger";
import { DEFAULT_SCORING_MODEL } from "../services/scoring/model";
import { recomputeRepository } from "../services/scoring/rescore";
import { type Job, JobFailedError, skipped } from "./types";

/**
 * A repository is due when its oldest score is at least this old (or a test case has none). The job runs
 * daily; half a day lets a repository whose uploads rescored it this morning wait for tomorrow, and keeps
 * every score at most a day and a half behind the clock.
 */
export const RECOMPUTE_INTERVAL_MS = 12 * 60 * 60 * 1000;
/** Repositories recomputed per invocation at most; the rest wait for the next one (daily), oldest first. */
export const RECOMPUTE_MAX_REPOS = 500;
/**
 * Wall-clock time after which an invocation takes no further repository (a scheduled Worker may run 15
 * minutes, and retention runs before it in the same invocation; the lease is 20). Wall clock on purpose: it bounds the work, not what the work computes.
 */
export const RECOMPUTE_BUDGET_MS = 8 * 60 * 1000;

export interface DueRepository {
  repoId: string;
  /** The oldest score of its test cases (null: some test case was never scored). */
  lastScored: Date | null;
  /** Its last completed upload, by receipt. */
  lastUpload: Date | null;
}

/**
 * The repositories due for a full recompute at `asOf`, in the order to do them, and how many are due in all.
 *
 * Due: some test case has no score, or the oldest score is at least RECOMPUTE_INTERVAL_MS old (a score is written with the
 * time of the upload or job that computed it, so a repository whose uploads rescore every test keeps fresh
 * scores and is not recomputed on top). A dormant repository stays due every interval: its scores must still
 * lose the runs that leave the horizon or that retention deletes (an earlier rule that skipped repositories
 * without recent uploads kept stale scores once retention had deleted their uploads). First the repositories with a completed upload within the scoring horizon (their windows
 * hold runs, so decay and sliding windows move their scores), then the rest; within each, the longest
 * without a recompute first (never first), so none starves when more are due than one invocation takes.
 *
 * One statement that reads test_cases, flake_scores and completed ingestions in full (grouped by
 * repository): a few seconds at millions of rows, once a day.
 */
export async function dueRepositories(
  db: Db,
  asOf: Date,
  limit: number,
): Promise<{ due: number; repos: DueRepository[] }> {
  const at = sql`${asOf.toISOString()}::timestamptz`;
  const result = await db.execute<{
    repo_id: string;
    last_scored: string | null;
    last_upload: string | null;
    due: string;
  }>(sql`
    with cases as (
      select repo_id, count(*) as cases from test_cases group by repo_id
    ), scored as (
      select repo_id, count(*) as scored, min(updated_at) as last_scored from flake_scores group by repo_id
    ), uploads as (
      select repo_id, max(received_at) as last_upload from ingestions where completed_at is not null group by repo_id
    ), candidates as (
      select c.repo_id, case when coalesce(s.scored, 0) >= c.cases then s.last_scored end as last_scored,
        u.last_upload
      from cases c
      left join scored s on s.repo_id = c.repo_id
      left join uploads u on u.repo_id = c.repo_id
    ), due as (
      select * from candidates
      where last_scored is null or last_scored <= ${at} - make_interval(secs => ${RECOMPUTE_INTERVAL_MS / 1000}::int)
    )
    select repo_id, last_scored, last_upload, count(*) over () as due
    from due
    order by coalesce(last_upload > ${at} - make_interval(days => ${DEFAULT_SCORING_MODEL.horizonDays}::int), false) desc,
      last_scored asc nulls first, repo_id
    limit ${limit}::int`);
  const rows = result.rows;
  return {
    due: rows.length ? Number(rows[0].due) : 0,
    repos: rows.map((r) => ({
      repoId: r.repo_id,
      lastScored: r.last_scored ? new Date(r.last_scored) : null,
      lastUpload: r.last_upload ? new Date(r.last_upload) : null,
    })),
  };
}

/**
 * The scheduled full recompute of flake scores (daily): due repositories, most overdue first, up to
 * `RECOMPUTE_MAX_REPOS` or `RECOMPUTE_BUDGET_MS`, each rescored in full as of the trigger's scheduled time —
 * never the clock — so windows slide and decay moves on even for tests no upload touches. A late or repeated
 * invocation for the same scheduled time writes the same rows (and finds the repositories it did no longer
 * due). One repository failing does not stop the others; the run fails afterwards with its counts, and the
 * repository stays due for the next one.
 */
export const flakeRecompute: Job = {
  name: "flake-recompute",
  async run({ db, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const { due, repos } = await dueRepositories(db, scheduledTime, RECOMPUTE_MAX_REPOS);
    const ctx = { db, now: () => scheduledTime };
    const budgetEnds = Date.now() + RECOMPUTE_BUDGET_MS;
    let failed = 0;
    let attempted = 0;
    let scored = 0;
    for (const repo of repos) {
      if (Date.now() > budgetEnds) break;
      attempted++;
      const started = Date.now();
      try {
        const summary = await recomputeRepository(ctx, repo.repoId, scheduledTime);
        scored += summary.scored;
        log.info("job.flake_recompute.repo", { repoId: repo.repoId, ...summary, ms: Date.now() - started });
      } catch (error) {
        failed++;
        log.error("job.flake_recompute.repo_failed", { repoId: repo.repoId, ...describeFailure(error) });
      }
    }
    const counts = {
      due,
      recomputed: attempted - failed,
      failed,
      testCases: scored,
      // Due repositories left for the next invocations.
      remaining: due - attempted + failed,
    };
    log.info("job.flake_recompute", { asOf: scheduledTime.toISOString(), ...counts });
    if (failed) throw new JobFailedError(`flake recompute failed for ${failed} repositories`, counts);
    return { outcome: "succeeded", counts };
  },
};
