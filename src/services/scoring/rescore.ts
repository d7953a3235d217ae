import { type SQL, sql } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { DEFAULT_SCORING_MODEL, MODEL_VERSION, type ScoringModel } from "./model";

/**
 * Flake scoring as one set-based statement (the maths: docs/flake-scoring-model.md).
 *
 * `rescoreQuery` returns the statement unexecuted, so an upload can put it in
 * the db.batch that completes the ingestion (it reads only completed
 * ingestions, and within one batch it sees the completion that precedes it).
 * Everything time-dependent (window cut-off, decay, recency) is relative to
 * `asOf`, never the database's or the Worker's clock: the same data and the
 * same asOf give the same rows, whether a test case was scored after each of
 * its uploads or by one full recompute. That is why the empirical-Bayes prior
 * is pooled over the CI runs in the test's own window rather than over the
 * whole repository: a repository-wide figure would move with every upload and
 * make a test's score depend on when it was last touched.
 */

/** Which test cases of the repository to score. */
export type ScoringScope =
  | "all"
  | { testCaseIds: readonly string[] }
  /**
   * The test cases an upload ran. `changedOnly` leaves out those whose score cannot have moved: a test
   * whose stored row is stable with no failure in its window, and whose run in this upload passed at the
   * first attempt (or was skipped), still has no failure in its window, hence score 0 and every factor at
   * its resting value. Only its run count and explanation would change; the scheduled recompute
   * refreshes those.
   */
  | { ingestionId: string; changedOnly?: boolean };

export type ScoreRow = {
  test_case_id: string;
  score: number;
  class: "stable" | "flaky" | "highly_flaky" | "broken" | "suspect";
  /** The explanation's one-line reason. */
  reason: string;
  /** The repository's highly-flaky threshold the row was classed with. */
  threshold: number;
};

/**
 * The test cases to score, one row each. An upload's are read from its runs alone (one index range; no pass
 * over test_cases, whose rows the runs reference). `changedOnly` asks flake_scores only about the runs that
 * passed at the first attempt, and only for rows at rest: flake_scores_resting_idx (migration 0018) holds
 * exactly those, so the lookup is one range of a small index, not a pass over every stored explanation.
 */
function scopeCases(repoId: string, scope: ScoringScope): SQL {
  const repo = sql`${repoId}::uuid`;
  if (scope === "all") return sql`select tc.id from test_cases tc where tc.repo_id = ${repo}`;
  if ("testCaseIds" in scope) {
    return sql`select tc.id from test_cases tc where tc.repo_id = ${repo}
      and tc.id = any(string_to_array(${scope.testCaseIds.join(",")}, ',')::uuid[])`;
  }
  // The upload's runs by its id alone (its runs are the repository's: checked once on the upload, not run by run,
  // which would tempt the planner into ANDing in the whole repository's range of test_runs_repo_started_idx).
  const ran = sql`r.ingestion_id = ${scope.ingestionId}::uuid
    and exists (select 1 from ingestions i where i.id = ${scope.ingestionId}::uuid and i.repo_id = ${repo})`;
  if (!scope.changedOnly) return sql`select distinct r.test_case_id as id from test_runs r where ${ran}`;
  return sql`select distinct r.test_case_id as id from test_runs r where ${ran}
    and not (r.status <> 'fail' and r.rerun_count = 0 and r.test_case_id in (
      select s.test_case_id from flake_scores s where s.repo_id = ${repo}
        and s.class = 'stable' and s.pass_rate = 1 and s.recency_fail = 0))`;
}

const num = (value: number) => sql`${value}::float8`;

/** The upsert of flake_scores for `scope`, returning (test_case_id, score, class) of every row written. */
export function rescoreQuery(
  repoId: string,
  scope: ScoringScope,
  asOf: Date,
  options: { model?: ScoringModel; now?: Date } = {},
): SQL {
  const m = options.model ?? DEFAULT_SCORING_MODEL;
  const at = sql`${asOf.toISOString()}::timestamptz`;
  const halfLifeSeconds = m.halfLifeDays * 86_400;
  const decayOf = (column: SQL) =>
    sql`exp(-ln(2) * greatest(extract(epoch from (${at} - ${column})), 0) / ${num(halfLifeSeconds)})`;
  const z = num(m.z);
  // One-sided Wilson bounds for a proportion p seen over n (effective) runs.
  const wilson = (p: SQL, n: SQL, sign: "-" | "+") =>
    sql`((${p} + ${z}^2 / (2 * ${n}) ${sql.raw(sign)} ${z} * sqrt(greatest(${p} * (1 - ${p}) / ${n} + ${z}^2 / (4 * ${n}^2), 0)))
      / (1 + ${z}^2 / ${n}))`;
  const pct = (value: SQL) => sql`to_char(100 * ${value}, 'FM990.0##')`;
  // Results of an upload that failed at the first attempt: final failures plus retry recoveries, both kept in
  // the upload's stored summary (one row per upload, not a scan of its runs).
  const firstFailed = sql`(i.tests_failed + coalesce((i.response->'summary'->>'retry_recoveries')::int, 0))`;

  return sql`
    with cfg as (
      select
        coalesce((rc.config->'scoringWeights'->>'passRate')::float8, ${num(m.weights.passRate)}) as w_pass,
        coalesce((rc.config->'scoringWeights'->>'volatility')::float8, ${num(m.weights.volatility)}) as w_vol,
        coalesce((rc.config->'scoringWeights'->>'recencyFail')::float8, ${num(m.weights.recencyFail)}) as w_rec,
        coalesce((rc.config->'scoringWeights'->>'clustering')::float8, ${num(m.weights.clustering)}) as w_clu,
        coalesce(rc.scoring_threshold::int, ${m.scoringThreshold}::int) as threshold
      from (select 1) as one left join repository_configs rc on rc.repo_id = ${repoId}::uuid
    ), ci as materialized (
      -- The repository's completed uploads (CI runs): how much of each failed at the first attempt. Runs of
      -- uploads not in here (still being written, or abandoned) never count.
      select i.id, (i.tests_total - i.tests_skipped) as executed,
        (i.tests_total - i.tests_skipped) >= ${m.outageMinTests}::int
          and ${firstFailed} > ${num(m.outageShare)} * (i.tests_total - i.tests_skipped) as outage,
        greatest(${firstFailed} - 1, 0)::float8 / nullif(i.tests_total - i.tests_skipped - 1, 0) as co_fail_share,
        ${firstFailed} as first_failed
      from ingestions i where i.repo_id = ${repoId}::uuid and i.completed_at is not null
    ), pending as (
      select coalesce(array_agg(id), '{}') as ids from ingestions where repo_id = ${repoId}::uuid and completed_at is null
    ), cases as materialized (
      ${scopeCases(repoId, scope)}
    ), agg as materialized (
      -- One row per test case, from its window: the last N executed runs up to asOf, within the horizon. It is
      -- computed per test case in a lateral subquery, so every sort and window pass is over at most N rows in
      -- memory, never over all runs of the repository at once (that sorted them twice and spilled to disk).
      -- Runs in infrastructure outages are set aside in partitions of their own: counted, never evidence (every
      -- aggregate of evidence is filtered to good runs). Whether a run's upload was an outage is a hashed lookup,
      -- not a join with ci, which would be rebuilt for every test case; the uploads' other figures (the prior's
      -- pool, the co-failure shares) are joined once, in \`pooled\`, from the runs' upload ids.
      select c.id as test_case_id, a.*
      from cases c cross join pending cross join lateral (
        select
          count(*) filter (where s.outage) as outage_runs,
          count(*) filter (where s.outage and s.first_fail) as outage_failures,
          count(*) filter (where not s.outage) as good_runs,
          count(*) filter (where not s.outage and s.status = 'pass') as passes,
          count(*) filter (where not s.outage and s.first_fail) as good_failures,
          sum(s.flip) filter (where not s.outage) as flips,
          sum(s.fail_w) filter (where not s.outage) as fail_w, sum(s.pass_w) filter (where not s.outage) as pass_w,
          -- The current failure streak: the runs after the last pass (all failed).
          count(*) filter (where not s.outage and s.started_at > coalesce(s.last_pass_at, '-infinity')) as fail_streak,
          coalesce(bool_and(not s.ever_passed)
            filter (where not s.outage and s.started_at > coalesce(s.last_pass_at, '-infinity')), false)
            as streak_unpassed,
          sum(s.fail_w) filter (where not s.outage and s.started_at <= s.last_pass_at) as fail_w_before,
          sum(s.pass_w) filter (where not s.outage and s.started_at <= s.last_pass_at) as pass_w_before,
          -- Up to the last failure: the rate the passes since then are judged against.
          sum(s.fail_w) filter (where not s.outage and s.started_at <= s.last_failure_at) as fail_w_to_failure,
          sum(s.pass_w) filter (where not s.outage and s.started_at <= s.last_failure_at) as pass_w_to_failure,
          count(*) filter (where not s.outage and s.started_at > coalesce(s.last_failure_at, '-infinity'))
            as passes_since_failure,
          -- In time order (the window's), said rather than left to the window's output order.
          array_agg(s.ingestion_id order by s.started_at, s.run_id) filter (where not s.outage) as good_uploads,
          array_agg(s.first_fail order by s.started_at, s.run_id) filter (where not s.outage) as good_failed,
          max(s.last_failure_at) filter (where not s.outage) as last_failure_at,
          count(*) filter (where not s.outage and s.key_first and s.contradiction) as contradictions,
          count(*) filter (where not s.outage and s.retry_recovered) as retry_recoveries,
          least(min(s.contradicted_at) filter (where not s.outage and s.contradiction),
            min(s.started_at) filter (where not s.outage and s.retry_recovered)) as evidence_first_at,
          greatest(max(s.contradicted_at) filter (where not s.outage and s.contradiction),
            max(s.started_at) filter (where not s.outage and s.retry_recovered)) as evidence_last_at,
          (array_agg(s.commit_sha order by case when s.contradiction then s.contradicted_at else s.started_at end,
            s.commit_sha) filter (where not s.outage and (s.contradiction or s.retry_recovered)))[1] as first_commit
        from (
          -- In time order: flips, the last pass and the last failure (streaks are counted back from them).
          select k.*,
            case when lag(k.first_fail) over ordered <> k.first_fail then 1 else 0 end as flip,
            max(k.started_at) filter (where k.status = 'pass') over ordered as last_pass_at,
            max(k.started_at) filter (where k.first_fail) over ordered as last_failure_at,
            k.decay * case when k.status = 'fail' then case when k.ever_passed then 1 else ${num(m.unconfirmedFailureWeight)} end
              when k.retry_recovered then ${num(m.retryFailureWeight)} else 0 end as fail_w,
            k.decay * case when k.status <> 'pass' then 0
              when k.retry_recovered then 1 - ${num(m.retryFailureWeight)} else 1 end as pass_w
          from (
            -- What each run's code key (commit) says: did the test ever pass on it, and did it both pass and
            -- fail there?
            select o.*,
              (o.status = 'fail' or o.rerun_count > 0) as first_fail,
              (o.status = 'pass' and o.rerun_count > 0) as retry_recovered,
              ${decayOf(sql`o.started_at`)} as decay,
              bool_or(o.status = 'pass') over key as ever_passed,
              bool_or(o.status = 'fail') over key and bool_or(o.status = 'pass') over key as contradiction,
              greatest(min(o.started_at) filter (where o.status = 'pass') over key,
                min(o.started_at) filter (where o.status = 'fail') over key) as contradicted_at,
              row_number() over key = 1 as key_first
            from (
              select w.*, w.ingestion_id in (select ci.id from ci where ci.outage) as outage
              from (
                select r.id as run_id, r.ingestion_id, r.commit_sha, r.status, r.rerun_count, r.started_at
                from test_runs r
                where r.test_case_id = c.id and r.status <> 'skip' and r.started_at <= ${at}
                  and r.started_at > ${at} - make_interval(days => ${m.horizonDays}::int)
                  and r.ingestion_id <> all(pending.ids)
                order by r.started_at desc, r.id desc
                limit ${m.windowRuns}::int
              ) w
            ) o
            -- Keys are grouped, not ordered: byte equality (collation "C") is the same equality, cheaper.
            window key as (partition by o.outage, o.commit_sha collate "C")
          ) k
          -- lag ignores the frame; the maxima see the whole partition.
          window ordered as (partition by k.outage order by k.started_at, k.run_id
            rows between unbounded preceding and unbounded following)
        ) s
      ) a
    ), pooled as (
      -- The uploads of each test's good runs, in one pass: the pooled first-attempt failures for the prior (sums
      -- of integers: any order) and the mean co-failure share of its good failures, summed in time order (as
      -- floating point, order matters).
      select a.test_case_id, sum(ci.first_failed) as pool_failed, sum(ci.executed) as pool_executed,
        avg(ci.co_fail_share order by g.n) filter (where g.failed) as clustering
      from agg a cross join unnest(a.good_uploads, a.good_failed) with ordinality as g(ingestion_id, failed, n)
      join ci on ci.id = g.ingestion_id
      group by a.test_case_id
    ), est as materialized (
      -- This step and the next ones are materialized (a few hundred rows, in memory). Inlined, each reference to
      -- an earlier step's column repeated that column's whole expression: p, its bounds and the verdicts were
      -- computed several times per row, and planning the unfolded expressions took longer than running them.
      select a.test_case_id, p.rate as prior_rate,
        (coalesce(a.good_runs, 0) + coalesce(a.outage_runs, 0))::int as runs,
        coalesce(a.passes, 0)::int as passes,
        coalesce(a.outage_runs, 0)::int as outage_runs, coalesce(a.outage_failures, 0)::int as outage_failures,
        coalesce(a.good_failures, 0)::int as good_failures,
        coalesce(a.good_runs, 0)::int as good_runs, coalesce(a.flips, 0)::int as flips,
        coalesce(a.passes_since_failure, 0)::int as passes_since_failure,
        coalesce(a.fail_streak, 0)::int as fail_streak, coalesce(a.streak_unpassed, false) as streak_unpassed,
        coalesce(a.contradictions, 0)::int as contradictions, coalesce(a.retry_recoveries, 0)::int as retry_recoveries,
        a.evidence_first_at, a.evidence_last_at, a.first_commit,
        coalesce(pl.clustering, 0) as clustering, a.last_failure_at,
        ${num(m.priorStrength)} * p.rate + coalesce(a.fail_w, 0) as alpha,
        ${num(m.priorStrength)} * (1 - p.rate) + coalesce(a.pass_w, 0) as beta,
        (${num(m.priorStrength)} * p.rate + coalesce(a.fail_w_before, 0))
          / (${num(m.priorStrength)} + coalesce(a.fail_w_before, 0) + coalesce(a.pass_w_before, 0)) as p_before,
        (${num(m.priorStrength)} * p.rate + coalesce(a.fail_w_to_failure, 0))
          / (${num(m.priorStrength)} + coalesce(a.fail_w_to_failure, 0) + coalesce(a.pass_w_to_failure, 0))
          as p_at_failure
      from agg a
      left join pooled pl on pl.test_case_id = a.test_case_id
      -- The empirical-Bayes prior: the failure rate of all tests in the same (good) CI runs, bounded.
      cross join lateral (select least(greatest(coalesce(pl.pool_failed::float8 / nullif(pl.pool_executed, 0),
        ${num(m.priorRateMin)}), ${num(m.priorRateMin)}), ${num(m.priorRateMax)}) as rate) p
    ), bounds as materialized (
      select est.*, alpha / (alpha + beta) as p, alpha + beta as n_eff,
        case when good_runs >= 2 then flips::float8 / (good_runs - 1) else 0 end as volatility,
        case when last_failure_at is null then 0 else ${decayOf(sql`last_failure_at`)} end as recency_fail,
        case when runs > 0 then passes::float8 / runs else 1 end as pass_rate
      from est
    ), verdict as materialized (
      select b.*,
        greatest(${wilson(sql`b.p`, sql`b.n_eff`, "-")}, 0) as p_lower,
        least(${wilson(sql`b.p`, sql`b.n_eff`, "+")}, 1) as p_upper,
        (b.fail_streak >= ${m.brokenMinStreak}::int and b.streak_unpassed
          and power(b.p_before, b.fail_streak) < ${num(m.brokenAlpha)}) as broken,
        (b.contradictions + b.retry_recoveries > 0 and b.passes_since_failure > 0
          and power(1 - b.p_at_failure, b.passes_since_failure) < ${num(m.recoveryAlpha)}) as recovered
      from bounds b
    ), classed as materialized (
      select v.*, cfg.*,
        (v.contradictions + v.retry_recoveries > 0 and v.p_lower >= ${num(m.flakyLowerBound)}
          and not v.recovered and not v.broken) as flaky,
        least(1, 2 * v.p) as t_pass, least(1, 2 * v.volatility) as t_vol, v.recency_fail as t_rec,
        case when v.good_failures > 0 then 1 - v.clustering else 0 end as t_clu
      from verdict v cross join cfg
    ), scored as materialized (
      -- A test that has not failed on good code in its window scores 0, whatever the prior says: no evidence,
      -- no score (and so an upload that only adds a clean pass cannot move it; see changedOnly).
      select c.*,
        case when c.good_failures = 0 then 0 else least(100, greatest(0, round(100
          * (c.w_pass * c.t_pass + c.w_vol * c.t_vol + c.w_rec * c.t_rec + c.w_clu * c.t_clu)
          / nullif(c.w_pass + c.w_vol + c.w_rec + c.w_clu, 0)
          * case when c.flaky then 1 else ${num(m.unconfirmedScoreFactor)} end))) end::int as score
      from classed c
    ), final as materialized (
      select s.*,
        case when s.broken then 'broken'
             when s.flaky and s.score >= s.threshold then 'highly_flaky'
             when s.flaky then 'flaky'
             when not s.recovered and s.good_failures > 0 and s.p_lower >= ${num(m.flakyLowerBound)} then 'suspect'
             else 'stable' end::flake_class as class
      from scored s
    )
    insert into flake_scores as fs (test_case_id, repo_id, window_n, runs_considered, pass_rate, volatility,
      recency_fail, clustering, score, class, first_flaky_at, last_flaky_at, ml_prediction_data, updated_at)
    select f.test_case_id, ${repoId}::uuid, ${m.windowRuns}::int, f.runs, f.pass_rate, f.volatility, f.recency_fail,
      f.clustering, coalesce(f.score, 0), f.class,
      case when f.flaky then f.evidence_first_at end, case when f.flaky then f.evidence_last_at end,
      jsonb_build_object(
        'model', ${MODEL_VERSION}::text,
        'asOf', ${asOf.toISOString()}::text,
        'reason', case
          when f.broken then format('failed its last %s runs, on code where it never passed: broken, not flaky',
            f.fail_streak)
          when f.recovered then format('%s passes in a row since its last failure, which a test failing %s%% of runs would'
            || ' manage less than 1%% of the time: considered fixed', f.passes_since_failure, ${pct(sql`f.p_at_failure`)})
          when f.flaky then format('%s commit(s) with both a pass and a failure, %s retry recover%s; fails about %s%% of runs'
            || ' on good code (95%% bounds %s–%s%%)', f.contradictions, f.retry_recoveries,
            case when f.retry_recoveries = 1 then 'y' else 'ies' end, ${pct(sql`f.p`)}, ${pct(sql`f.p_lower`)},
            ${pct(sql`f.p_upper`)})
          when f.class = 'suspect' then format('%s failure(s) outside infrastructure outages but no commit with both a pass'
            || ' and a failure yet', f.good_failures)
          when f.runs = 0 then 'no completed runs in the window'
          else 'no flake evidence' end,
        'window', jsonb_build_object('runs', ${m.windowRuns}::int, 'horizonDays', ${m.horizonDays}::int,
          'halfLifeDays', ${num(m.halfLifeDays)}),
        'evidence', jsonb_build_object(
          'runsConsidered', f.runs, 'passes', f.passes, 'outageRuns', f.outage_runs,
          'outageFailuresIgnored', f.outage_failures, 'failuresOnGoodCode', f.good_failures,
          'contradictions', f.contradictions, 'retryRecoveries', f.retry_recoveries,
          'firstFlakyCommit', f.first_commit, 'firstEvidenceAt', f.evidence_first_at,
          'lastEvidenceAt', f.evidence_last_at, 'passesSinceLastFailure', f.passes_since_failure,
          'failStreak', f.fail_streak),
        'failureProbability', jsonb_build_object(
          'estimate', round(f.p::numeric, 5), 'lower', round(f.p_lower::numeric, 5),
          'upper', round(f.p_upper::numeric, 5), 'effectiveRuns', round(f.n_eff::numeric, 2),
          'priorRate', round(f.prior_rate::numeric, 5), 'priorStrength', ${num(m.priorStrength)},
          'atLastFailure', round(f.p_at_failure::numeric, 5)),
        'factors', jsonb_build_object(
          'passRate', jsonb_build_object('value', round(f.pass_rate::numeric, 4), 'term', round(f.t_pass::numeric, 4),
            'weight', f.w_pass),
          'volatility', jsonb_build_object('value', round(f.volatility::numeric, 4), 'term', round(f.t_vol::numeric, 4),
            'weight', f.w_vol),
          'recencyFail', jsonb_build_object('value', round(f.recency_fail::numeric, 4),
            'term', round(f.t_rec::numeric, 4), 'weight', f.w_rec),
          'clustering', jsonb_build_object('value', round(f.clustering::numeric, 4), 'term', round(f.t_clu::numeric, 4),
            'weight', f.w_clu)),
        'scoreFactor', case when f.flaky then 1 else ${num(m.unconfirmedScoreFactor)} end,
        'threshold', f.threshold,
        'recovered', f.recovered, 'broken', f.broken),
      ${(options.now ?? asOf).toISOString()}::timestamptz
    from final f
    on conflict (test_case_id) do update set
      window_n = excluded.window_n, runs_considered = excluded.runs_considered, pass_rate = excluded.pass_rate,
      volatility = excluded.volatility, recency_fail = excluded.recency_fail, clustering = excluded.clustering,
      score = excluded.score, class = excluded.class,
      -- Once seen flaky, a test keeps the date it first was (least/greatest skip nulls).
      first_flaky_at = least(fs.first_flaky_at, excluded.first_flaky_at),
      last_flaky_at = greatest(fs.last_flaky_at, excluded.last_flaky_at),
      ml_prediction_data = excluded.ml_prediction_data, updated_at = excluded.updated_at
    returning test_case_id, score, class, ml_prediction_data->>'reason' as reason,
      (ml_prediction_data->>'threshold')::int as threshold`;
}

/**
 * Settings for the scoring statement's transaction; put it before rescoreQuery in the same db.batch.
 * PostgreSQL's JIT judges the statement by its (pessimistic) cost estimate and spends a second compiling a
 * query that runs in a fraction of that: for this workload it is pure overhead. And right after an upload
 * the planner's statistics lag behind (a fresh repository looks empty), so it would pick nested loops that
 * rerun a whole aggregation per test case; without them it hashes, which is right at every size (the
 * window's lateral index scan is a nested loop by nature and stays one).
 */
export const SCORING_SETTINGS: SQL = sql`select set_config('jit', 'off', true), set_config('enable_nestloop', 'off', true)`;

/**
 * The same for a full recompute, plus work_mem (64 MB, this transaction only) to keep the sorts and hashes over
 * every window's upload ids (`pooled`) in memory, not on disk. Not for uploads: they rescore a few tests, and
 * work_mem is granted per sort and hash of every concurrent upload.
 */
export const RECOMPUTE_SETTINGS: SQL = sql`select set_config('jit', 'off', true),
  set_config('enable_nestloop', 'off', true), set_config('work_mem', '64MB', true)`;

/** Scores the test cases of `scope` now (one db.batch, one transaction); the rows written. */
export async function rescore(
  ctx: ServiceContext,
  repoId: string,
  scope: ScoringScope,
  asOf: Date,
  model?: ScoringModel,
): Promise<ScoreRow[]> {
  const [, result] = await ctx.db.batch([
    ctx.db.execute(scope === "all" ? RECOMPUTE_SETTINGS : SCORING_SETTINGS),
    ctx.db.execute<ScoreRow>(rescoreQuery(repoId, scope, asOf, { model, now: ctx.now() })),
  ]);
  return result.rows as unknown as ScoreRow[];
}

/**
 * The scheduled job's full recompute of one repository: every test case, as
 * of `asOf` (windows slide and decay moves on). Idempotent: the same data and
 * asOf write the same rows.
 */
export async function recomputeRepository(
  ctx: ServiceContext,
  repoId: string,
  asOf: Date,
  model?: ScoringModel,
): Promise<{ scored: number; flaky: number; highlyFlaky: number; broken: number }> {
  const rows = await rescore(ctx, repoId, "all", asOf, model);
  const count = (cls: ScoreRow["class"]) => rows.filter((r) => r.class === cls).length;
  return { scored: rows.length, flaky: count("flaky"), highlyFlaky: count("highly_flaky"), broken: count("broken") };
}
