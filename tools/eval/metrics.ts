import type { Simulation } from "./simulate.ts";

/**
 * The baselines of spec/flake-scoring.md, replayed over the simulated history run by run, and the
 * precision / recall / runs-to-detection of any detector given when it first flagged each test and what it
 * flags at the end.
 */

export interface Detection {
  /** Flagged after the last run. */
  flagged: Set<number>;
  /** Run index (0-based) after which each test was first flagged. */
  firstFlagged: Map<number, number>;
  /** For threshold detectors: each test's final score, to read precision at another detector's recall. */
  scores?: Float64Array;
}

export interface Metrics {
  precision: number;
  recall: number;
  /** Median of (first flagged run + 1) over the true positives. */
  medianRunsToDetection: number | null;
  truePositives: number;
  falsePositives: number;
}

export const truth = (simulation: Simulation) =>
  new Set(simulation.tests.filter((t) => t.kind === "flaky").map((t) => t.index));

export function metrics(simulation: Simulation, detection: Detection): Metrics {
  const flaky = truth(simulation);
  let tp = 0;
  const runs: number[] = [];
  for (const index of detection.flagged) {
    if (!flaky.has(index)) continue;
    tp += 1;
    runs.push((detection.firstFlagged.get(index) ?? simulation.runs.length - 1) + 1);
  }
  const fp = detection.flagged.size - tp;
  runs.sort((a, b) => a - b);
  return {
    precision: detection.flagged.size === 0 ? 1 : tp / detection.flagged.size,
    recall: flaky.size === 0 ? 1 : tp / flaky.size,
    medianRunsToDetection: runs.length === 0 ? null : median(runs),
    truePositives: tp,
    falsePositives: fp,
  };
}

function median(sorted: number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The best precision a scored detector reaches while its recall is at least `recall` (flag every test whose
 * score is at least the cut; the lowest cut that reaches the recall). null: it cannot reach that recall.
 */
export function precisionAtRecall(simulation: Simulation, scores: Float64Array, recall: number): number | null {
  const flaky = truth(simulation);
  const order = [...scores.keys()].filter((i) => scores[i] > 0).sort((a, b) => scores[b] - scores[a]);
  let tp = 0;
  for (let k = 0; k < order.length; k++) {
    if (flaky.has(order[k])) tp += 1;
    const tiesFollow = k + 1 < order.length && scores[order[k + 1]] === scores[order[k]];
    if (!tiesFollow && tp / flaky.size >= recall) return tp / (k + 1);
  }
  return null;
}

type Rule = (state: TestState) => boolean;
interface TestState {
  sameCommit: boolean;
  retryRecovery: boolean;
  window: ("pass" | "fail")[];
}

/** Replays the history run by run through a per-test rule over what a detector could know. */
function replay(
  simulation: Simulation,
  rule: Rule,
  options: { skipOutages?: boolean; window: number; score?: (state: TestState) => number },
): Detection {
  const states: TestState[] = simulation.tests.map(() => ({ sameCommit: false, retryRecovery: false, window: [] }));
  const seen = simulation.tests.map(() => new Map<number, { pass: boolean; fail: boolean }>());
  const firstFlagged = new Map<number, number>();
  for (const run of simulation.runs) {
    if (options.skipOutages && run.outage) continue;
    for (const test of simulation.tests) {
      const result = run.results[test.index];
      const state = states[test.index];
      const key = seen[test.index].get(run.commit) ?? { pass: false, fail: false };
      if (result.status === "pass") key.pass = true;
      else key.fail = true;
      seen[test.index].set(run.commit, key);
      if (key.pass && key.fail) state.sameCommit = true;
      if (result.status === "pass" && result.failedAttempts > 0) state.retryRecovery = true;
      state.window.push(result.status);
      if (state.window.length > options.window) state.window.shift();
      if (!firstFlagged.has(test.index) && rule(state)) firstFlagged.set(test.index, run.index);
    }
  }
  const flagged = new Set(simulation.tests.filter((t) => rule(states[t.index])).map((t) => t.index));
  const score = options.score;
  const scores = score ? Float64Array.from(states, (s) => score(s)) : undefined;
  return { flagged, firstFlagged, scores };
}

/** Transitions between consecutive results over the window, per result (Buildkite's score). */
const transitionScore = (s: TestState) => {
  let flips = 0;
  for (let i = 1; i < s.window.length; i++) if (s.window[i] !== s.window[i - 1]) flips += 1;
  return s.window.length === 0 ? 0 : flips / s.window.length;
};
const failureRate = (s: TestState) =>
  s.window.length === 0 ? 0 : s.window.filter((r) => r === "fail").length / s.window.length;

export const BASELINE_DEFAULTS = { window: 50, transitionThreshold: 0.1, failureRateThreshold: 0.05 };

export function baselines(simulation: Simulation, defaults = BASELINE_DEFAULTS) {
  const window = defaults.window;
  return {
    "same-commit pass/fail": replay(simulation, (s) => s.sameCommit, { window }),
    "same-commit or retry recovery": replay(simulation, (s) => s.sameCommit || s.retryRecovery, { window }),
    [`Buildkite transitions ≥ ${defaults.transitionThreshold}`]: replay(
      simulation,
      (s) => transitionScore(s) >= defaults.transitionThreshold,
      { window, score: transitionScore },
    ),
    [`failure rate ≥ ${defaults.failureRateThreshold * 100}%`]: replay(
      simulation,
      (s) => failureRate(s) >= defaults.failureRateThreshold,
      { window, score: failureRate },
    ),
  } as Record<string, Detection>;
}

/** Same-commit-or-retry evidence from only the runs the simulator knows were not outages. */
export const oracle = (simulation: Simulation) =>
  replay(simulation, (s) => s.sameCommit || s.retryRecovery, {
    skipOutages: true,
    window: Number.POSITIVE_INFINITY,
  });
