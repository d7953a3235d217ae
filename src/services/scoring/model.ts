import { DEFAULT_SCORING_WEIGHTS, type ScoringWeights } from "../repo-config";

/**
 * The flake model's parameters. The reasoning behind each default is in
 * docs/flake-scoring-model.md; the weights and the highly-flaky threshold come
 * from the repository's config (repository_configs) and fall back to these.
 */
export interface ScoringModel {
  /** Runs per test case considered: the most recent N (anchorpipe's window). */
  windowRuns: number;
  /** …and none older than this many days before asOf, so a full recompute reads a bounded range. */
  horizonDays: number;
  /** Half-life of a run's weight in the failure-probability estimate and of recency_fail. */
  halfLifeDays: number;
  /** A CI run whose share of tests failing at the first attempt exceeds this is an infrastructure event. */
  outageShare: number;
  /** …counted only for uploads of at least this many executed tests (3 failures of 4 is no outage). */
  outageMinTests: number;
  /** Weight of a failure in an infrastructure event (0: ignored as evidence). */
  outageFailureWeight: number;
  /** Weight of a failure on a code key where the test never passed (could be broken code, not a flake). */
  unconfirmedFailureWeight: number;
  /** Share of a retry-recovered run counted as a failure (anchorpipe: "an initial failure counts 0.5"). */
  retryFailureWeight: number;
  /** Pseudo-runs of the empirical-Bayes prior. */
  priorStrength: number;
  /** Bounds on the prior's failure rate. */
  priorRateMin: number;
  priorRateMax: number;
  /** z of the one-sided bounds on p (1.645: 95 %). */
  z: number;
  /** `flaky` needs flake evidence and a lower bound on p at least this. */
  flakyLowerBound: number;
  /** Recovered when this many straight passes would happen with probability < this at the test's own rate. */
  recoveryAlpha: number;
  /** `broken`: at least this many straight failures on code where it never passed… */
  brokenMinStreak: number;
  /** …and a flake at the rate seen before the streak would fail that often in a row with probability < this. */
  brokenAlpha: number;
  /** Score multiplier for a test without (current) flake evidence: only evidence reaches the upper half. */
  unconfirmedScoreFactor: number;
  weights: ScoringWeights;
  scoringThreshold: number;
}

export const DEFAULT_SCORING_MODEL: ScoringModel = {
  windowRuns: 60,
  horizonDays: 90,
  halfLifeDays: 14,
  outageShare: 0.5,
  outageMinTests: 10,
  outageFailureWeight: 0,
  unconfirmedFailureWeight: 0.25,
  retryFailureWeight: 0.5,
  priorStrength: 10,
  priorRateMin: 0.0005,
  priorRateMax: 0.25,
  z: 1.645,
  flakyLowerBound: 0.0002,
  recoveryAlpha: 0.01,
  brokenMinStreak: 3,
  brokenAlpha: 0.05,
  unconfirmedScoreFactor: 0.5,
  weights: DEFAULT_SCORING_WEIGHTS,
  scoringThreshold: 60,
};

/** The version written into every explanation, so a reader knows which maths produced a row. */
export const MODEL_VERSION = "anchorpipe-edge/flake-model@1";
