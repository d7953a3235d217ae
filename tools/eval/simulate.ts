/**
 * Simulated CI histories with known truth, for `npm run eval:flaky` (docs/flaky-eval.md).
 *
 * Every CI run executes the whole suite on one commit. Several commits a day; some runs repeat a recent
 * commit (a re-run, the merge after a pull request). Most tests are stable; some are flaky with a fixed
 * failure probability drawn log-uniformly from 0.01 % to 60 % (so most flaky tests fail rarely: the median
 * is about 0.8 %, close to FlakeFlagger's 0.71 %); a few are broken by a commit and maybe fixed by a later
 * one; some runs are infrastructure outages that fail most tests; in some runs CI retries failed tests.
 */

export interface SimulationOptions {
  seed: number;
  tests: number;
  runs: number;
  flakyShare: number;
  brokenShare: number;
  minFlakeRate: number;
  maxFlakeRate: number;
  /** Chance that a run repeats one of the last three commits instead of a new one. */
  rerunCommitShare: number;
  outageShare: number;
  retryRunShare: number;
  /** Retries per failed test in a run with retries. */
  maxRetries: number;
  /** Hours between runs, on average. */
  hoursBetweenRuns: number;
  /** The last run starts this long before now (the Worker refuses start times in the future). */
  endsAt: number;
}

export const DEFAULT_SIMULATION: Omit<SimulationOptions, "seed" | "endsAt"> = {
  tests: 2000,
  runs: 60,
  flakyShare: 0.08,
  brokenShare: 0.01,
  minFlakeRate: 0.0001,
  maxFlakeRate: 0.6,
  rerunCommitShare: 0.35,
  outageShare: 0.06,
  retryRunShare: 0.3,
  maxRetries: 2,
  hoursBetweenRuns: 3,
};

export type TestKind = "stable" | "flaky" | "broken";

export interface SimTest {
  index: number;
  path: string;
  name: string;
  kind: TestKind;
  /** Per-run failure probability of a flaky test (0 otherwise). */
  flakeRate: number;
  /** Broken on commits numbered in [brokenFrom, fixedAt). */
  brokenFrom: number;
  fixedAt: number;
}

export interface SimResult {
  /** Final status after any retries. */
  status: "pass" | "fail";
  /** Failed attempts before the final one. */
  failedAttempts: number;
}

export interface SimRun {
  index: number;
  commit: number;
  commitSha: string;
  startedAt: Date;
  outage: boolean;
  retries: boolean;
  results: SimResult[];
}

export interface Simulation {
  options: SimulationOptions;
  tests: SimTest[];
  runs: SimRun[];
}

/** mulberry32: small, fast, good enough for a simulation, and the same on every machine. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function commitSha(seed: number, commit: number): string {
  const random = prng(seed * 1_000_003 + commit);
  return Array.from({ length: 40 }, () => Math.floor(random() * 16).toString(16)).join("");
}

export function simulate(options: SimulationOptions): Simulation {
  const random = prng(options.seed);
  const between = (lo: number, hi: number) => lo + (hi - lo) * random();
  const tests: SimTest[] = Array.from({ length: options.tests }, (_, index) => {
    const draw = random();
    const kind: TestKind =
      draw < options.flakyShare ? "flaky" : draw < options.flakyShare + options.brokenShare ? "broken" : "stable";
    const flakeRate =
      kind === "flaky" ? Math.exp(between(Math.log(options.minFlakeRate), Math.log(options.maxFlakeRate))) : 0;
    // Commits are numbered by the run that introduced them, so this breaks somewhere in the history.
    const brokenFrom = kind === "broken" ? Math.floor(between(0.1, 0.9) * options.runs) : Number.POSITIVE_INFINITY;
    const fixedAt =
      kind === "broken" && random() < 0.5 ? brokenFrom + Math.floor(between(5, 25)) : Number.POSITIVE_INFINITY;
    return {
      index,
      path: `src/module${index % 40}/feature${index % 7}.test.ts`,
      name: `case ${index}`,
      kind,
      flakeRate,
      brokenFrom,
      fixedAt,
    };
  });

  const runs: SimRun[] = [];
  const commits: number[] = [];
  const stepMs = options.hoursBetweenRuns * 3_600_000;
  const startMs = options.endsAt - options.runs * stepMs;
  for (let index = 0; index < options.runs; index++) {
    const repeat = commits.length > 0 && random() < options.rerunCommitShare;
    const commit = repeat ? commits[Math.max(0, commits.length - 1 - Math.floor(random() * 3))] : index;
    if (!repeat) commits.push(commit);
    const outage = random() < options.outageShare;
    const outageFailRate = between(0.6, 0.95);
    const retries = random() < options.retryRunShare;
    const attempt = (test: SimTest, first: boolean): boolean => {
      // true: this attempt failed
      if (test.kind === "broken" && commit >= test.brokenFrom && commit < test.fixedAt) return true;
      if (outage && (first || random() < 0.5)) {
        if (random() < outageFailRate) return true;
      }
      return test.kind === "flaky" && random() < test.flakeRate;
    };
    const results = tests.map((test): SimResult => {
      let failedAttempts = 0;
      let failed = attempt(test, true);
      const allowed = retries ? options.maxRetries : 0;
      while (failed && failedAttempts < allowed) {
        failedAttempts += 1;
        failed = attempt(test, false);
      }
      return { status: failed ? "fail" : "pass", failedAttempts };
    });
    runs.push({
      index,
      commit,
      commitSha: commitSha(options.seed, commit),
      startedAt: new Date(startMs + index * stepMs + Math.floor(random() * stepMs * 0.5)),
      outage,
      retries,
      results,
    });
  }
  return { options, tests, runs };
}

const escapeXml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/**
 * One run as a Surefire-style JUnit report: a failed attempt before a pass is a <flakyFailure>, failed
 * retries of a test that still failed are <rerunFailure>s (anchorpipe folds both into rerun_count).
 */
export function junitReport(simulation: Simulation, run: SimRun): string {
  const timestamp = run.startedAt.toISOString().replace(/\.\d{3}Z$/, "Z");
  const failures = run.results.filter((r) => r.status === "fail").length;
  const cases = simulation.tests.map((test, i) => {
    const result = run.results[i];
    const open = `<testcase file="${escapeXml(test.path)}" name="${escapeXml(test.name)}" time="0.012">`;
    const failure = (tag: string) =>
      `<${tag} message="expected true to be false" type="AssertionError">AssertionError at ${escapeXml(test.path)}:12</${tag}>`;
    const parts: string[] = [];
    if (result.status === "fail") {
      parts.push(failure("failure"));
      for (let k = 0; k < result.failedAttempts; k++) parts.push(failure("rerunFailure"));
    } else {
      for (let k = 0; k < result.failedAttempts; k++) parts.push(failure("flakyFailure"));
    }
    return parts.length === 0 ? `${open.slice(0, -1)}/>` : `${open}${parts.join("")}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="simulated" tests="${run.results.length}" failures="${failures}" timestamp="${timestamp}">
${cases.join("\n")}
</testsuite>
`;
}
