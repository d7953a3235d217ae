import { type SQL, sql } from "drizzle-orm";
import type { NormalizedResult } from "../../ingestion/normalize";
import { ownersOfPath } from "../owners";
import type { ScoringModel } from "./model";
import { rescoreQuery } from "./rescore";

/**
 * What an upload does to the flake scores, as one statement that runs in the
 * db.batch completing the upload (one transaction, no extra round trip):
 *
 *   1. rescore the test cases the upload ran, leaving out those that cannot
 *      have moved (`changedOnly`: stable, no failure in the window, a clean
 *      pass now);
 *   2. compare each new class with the stored one (read in the statement's
 *      snapshot, which is from before the upsert) and write one notification per transition, to the
 *      owners CODEOWNERS gives the test's path who have a role on the
 *      repository, or to the whole repository when none does;
 *   3. record in the upload's stored response how many of its tests are now
 *      flaky (`summary.flaky_candidates`), so the client and every duplicate
 *      hear the same figure.
 *
 * A test in a state that holds (flaky after flaky) has no transition, so an
 * upload never repeats a notification. Transitions, in order of precedence:
 * into highly_flaky (score_threshold_breach), into flaky (flake_detected),
 * into broken, and out of flaky, highly_flaky or broken into stable or
 * suspect (recovered). highly_flaky → flaky is not announced.
 */

/** The time an upload is scored as of: its newest result, never later than the clock. */
export function uploadAsOf(results: readonly NormalizedResult[], now: Date): Date {
  let newest = Number.NEGATIVE_INFINITY;
  for (const r of results) {
    const t = Date.parse(r.startedAt);
    if (t > newest) newest = t;
  }
  return new Date(Number.isFinite(newest) ? Math.min(newest, now.getTime()) : now.getTime());
}

export interface UploadScoring {
  repoId: string;
  ingestionId: string;
  asOf: Date;
  /** When the batch completes the upload: notifications are written only if it was this request that did. */
  completedAt: Date;
  model?: ScoringModel;
}

/** The statement; put SCORING_SETTINGS before it in the same batch. Returns (scored, flaky, notified). */
export function uploadScoringQuery(u: UploadScoring): SQL {
  const repo = sql`${u.repoId}::uuid`;
  const ingestion = sql`${u.ingestionId}::uuid`;
  const at = u.completedAt.toISOString();
  return sql`
    with scored as (
      ${rescoreQuery(u.repoId, { ingestionId: u.ingestionId, changedOnly: true }, u.asOf, {
        model: u.model,
        now: u.completedAt,
      })}
    ), prev as materialized (
      -- The rows as they were: every part of one statement reads the snapshot taken before the upsert.
      -- Looked up by key (an array, so no join: one index probe per rescored test, not a pass over the table).
      -- The repository is checked after the probes (offset 0 keeps it there): as a condition of the scan, the
      -- planner would AND in the repository's whole range of flake_scores_repo_score_idx, which grows with it.
      select k.test_case_id, k.class from (
        select s.test_case_id, s.class, s.repo_id from flake_scores s
        where s.test_case_id = any(array(select test_case_id from scored))
        offset 0
      ) k
      where k.repo_id = ${repo}
    ), transitions as (
      select sc.test_case_id, sc.score, sc.class, sc.reason, sc.threshold, tc.path, tc.name,
        coalesce(p.class, 'stable') as was,
        case
          when sc.class = 'highly_flaky' then 'score_threshold_breach'
          when sc.class = 'flaky' and coalesce(p.class, 'stable') <> 'highly_flaky' then 'flake_detected'
          when sc.class = 'broken' then 'broken'
          else 'recovered' end as kind
      from scored sc
      -- A probe per transition (they are few), never a pass over the repository's test cases.
      cross join lateral (select c.path, c.name from test_cases c where c.id = sc.test_case_id) tc
      left join prev p on p.test_case_id = sc.test_case_id
      where sc.class is distinct from coalesce(p.class, 'stable')
        and (sc.class in ('highly_flaky', 'broken')
          or (sc.class = 'flaky' and coalesce(p.class, 'stable') <> 'highly_flaky')
          or (sc.class in ('stable', 'suspect') and coalesce(p.class, 'stable') in ('flaky', 'highly_flaky', 'broken')))
        -- Only the request that completed the upload announces it (a concurrent resume rescoring the same
        -- data must not announce it twice).
        and exists (select 1 from ingestions i where i.id = ${ingestion} and i.completed_at = ${at}::timestamptz)
    ), owned as (
      select t.*, ${ownersOfPath(u.repoId, sql`t.path`)} as owners from transitions t
    ), recipients as (
      -- Owners who are people with a role on the repository: @login or an email address. Teams and people
      -- without access get the repository-wide notification instead.
      select distinct o.test_case_id, u.id as user_id
      from owned o
      cross join lateral unnest(o.owners) as own(owner)
      join users u on u.deleted_at is null and (
        (left(own.owner, 1) = '@' and strpos(own.owner, '/') = 0 and lower(u.github_login) = lower(substr(own.owner, 2)))
        or (strpos(own.owner, '@') > 1 and lower(u.email) = lower(own.owner)))
      join user_repo_roles ur on ur.user_id = u.id and ur.repo_id = ${repo}
    ), notified as (
      insert into notifications (repo_id, user_id, type, title, message, severity, action_url, metadata, created_at)
      select ${repo}, r.user_id,
        (case o.kind when 'score_threshold_breach' then 'score_threshold_breach'
          when 'flake_detected' then 'flake_detected' else 'other' end)::notification_type,
        left(case o.kind
          when 'score_threshold_breach' then 'Highly flaky: '
          when 'flake_detected' then 'Flaky: '
          when 'broken' then 'Broken: '
          else 'Recovered: ' end || o.name, 500),
        case o.kind
          when 'score_threshold_breach' then format('Score %s, at or over the threshold of %s. %s', o.score, o.threshold,
            o.reason)
          when 'recovered' then format('No longer %s (score %s). %s', replace(o.was::text, '_', ' '), o.score, o.reason)
          else format('Score %s. %s', o.score, o.reason) end,
        (case
          when o.kind = 'recovered' then 'info'
          when o.kind = 'broken' then 'error'
          when o.score >= 80 then 'critical'
          when o.score >= o.threshold then 'error'
          else 'warning' end)::notification_severity,
        '/api/repos/' || ${u.repoId}::text || '/tests/' || o.test_case_id || '/score',
        jsonb_build_object('event', 'flake_transition', 'transition', o.kind, 'testId', o.test_case_id,
          'path', o.path, 'name', o.name, 'from', o.was, 'to', o.class, 'score', o.score,
          'owners', to_jsonb(o.owners), 'ingestionId', ${u.ingestionId}::text),
        ${at}::timestamptz
      from owned o left join recipients r on r.test_case_id = o.test_case_id
      returning id
    ), counted as (
      update ingestions set response = jsonb_set(response, '{summary,flaky_candidates}', to_jsonb((
        select count(*)::int from scored where class in ('flaky', 'highly_flaky'))))
      where id = ${ingestion}
      returning 1
    )
    select (select count(*)::int from scored) as scored,
      (select count(*)::int from scored where class in ('flaky', 'highly_flaky')) as flaky,
      (select count(*)::int from notified) as notified,
      (select count(*)::int from counted) as counted`;
}
