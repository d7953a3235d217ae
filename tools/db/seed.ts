import { Command } from "commander";
import type pg from "pg";
import { isMain, parseToolArgs } from "./command.ts";
import { openDatabase } from "./connection.ts";

/**
 * A realistic, deterministic development and benchmark data set, made with
 * set-based SQL: every row comes from generate_series, and every "random"
 * choice is a hash of the series indexes and the seed (hashint8extended,
 * which PostgreSQL and PGlite compute identically), so the same options give
 * the same rows, ids included (only test_runs.id and flake_scores.id are gen_random_uuid()).
 *
 * Shape: each seeded repo has `tests` test cases and `runs` CI runs; every
 * CI run executes every test of its repo and is one ingestion, so each test
 * has `runs` test runs. Tests are mostly stable, ~10% flaky (intermittent
 * failures, retried to a pass in repos that use retries), ~2% broken from
 * some run on, ~2% always skipped. CI runs are mostly on main, the rest on
 * feature branches with pull requests (where a commit occasionally breaks a
 * test for all of its runs); ~2% are infrastructure outages that fail most
 * tests at once.
 *
 * Seeded repos are owned by "seed-*" and carry config.seed; `reset` deletes
 * exactly those (their rows go with them by cascade) before seeding again.
 */

export const SEED_OWNER_PREFIX = "seed-";

export interface SeedOptions {
  repos: number;
  /** Test cases per repo. */
  tests: number;
  /** CI runs (ingestions) per repo, so also runs per test case. */
  runs: number;
  /** The CI runs are spread over this many days before `until`. */
  days: number;
  /** End of the seeded history; the default is the start of the current hour. */
  until: Date;
  /** Varies the data set; the same seed and options give the same rows. */
  seed: number;
  /** Delete previously seeded repos first (otherwise their presence is an error). */
  reset: boolean;
  /** Also compute flake_scores from the seeded runs. */
  scores: boolean;
  /**
   * Where the role may (a superuser, or GRANT SET ON PARAMETER session_replication_role), insert the runs
   * without the per-row foreign-key triggers (they are made from their existing parents, and counted).
   * Where it may also change test_runs (its owner), each month partition the runs go to is detached,
   * loaded without indexes, indexed in one sorted build per index and attached again: 10 million runs take
   * minutes instead of most of an hour. test_runs is locked until the seed commits.
   */
  bulkLoad: boolean;
  /** Called as each step finishes. */
  onStep?: (step: SeedStep) => void;
}

export interface SeedStep {
  name: string;
  rows: number;
  ms: number;
}

export interface SeedResult {
  deletedRepos: number;
  repos: number;
  testCases: number;
  ingestions: number;
  testRuns: number;
  flakeScores: number;
  partitionsCreated: string[];
  /** Seeded runs that landed in test_runs_default (should be 0). */
  defaultPartitionRows: number;
  /** Seeded users (per repo an admin, a member and a read-only user; one platform admin). */
  users: number;
  /** Audit rows written (rows already there from an earlier seed are skipped). */
  auditLogs: number;
  /** Whether the runs went in without per-row foreign-key triggers (see SeedOptions.bulkLoad). */
  bulkLoaded: boolean;
  /** The partitions loaded while detached, their indexes built afterwards (see SeedOptions.bulkLoad). */
  indexesDeferred: string[];
  steps: SeedStep[];
  totalMs: number;
}

export const DEFAULT_SEED_OPTIONS = {
  repos: 3,
  tests: 50,
  runs: 30,
  days: 30,
  seed: 1,
  reset: false,
  scores: true,
  bulkLoad: true,
} as const;

const LIMITS = { repos: 10_000, tests: 1_000_000, runs: 1_000_000, days: 1_000, seed: 1_000_000 } as const;

export class SeedError extends Error {
  override name = "SeedError";
}

function startOfCurrentHour(now = new Date()): Date {
  const hour = new Date(now);
  hour.setUTCMinutes(0, 0, 0);
  return hour;
}

function resolveOptions(options: Partial<SeedOptions>): SeedOptions {
  const resolved: SeedOptions = { ...DEFAULT_SEED_OPTIONS, until: startOfCurrentHour(), ...options };
  for (const key of ["repos", "tests", "runs", "days"] as const) {
    const value = resolved[key];
    if (!Number.isInteger(value) || value < 1 || value > LIMITS[key]) {
      throw new SeedError(`${key} must be a whole number from 1 to ${LIMITS[key]}, got ${value}`);
    }
  }
  if (!Number.isInteger(resolved.seed) || resolved.seed < 0 || resolved.seed > LIMITS.seed) {
    throw new SeedError(`seed must be a whole number from 0 to ${LIMITS.seed}, got ${resolved.seed}`);
  }
  if (Number.isNaN(resolved.until.getTime())) throw new SeedError("until is not a valid date");
  return resolved;
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary. Only lowercase letters and spaces in the phrase parts: names in other styles are derived from them.

const OWNERS = ["acme", "globex", "initech", "umbrella", "hooli", "stark"];
const REPO_TEMPLATES: [name: string, framework: string][] = [
  ["payments-api", "vitest"],
  ["ml-pipeline", "pytest"],
  ["billing-service", "junit"],
  ["web-app", "playwright"],
  ["edge-proxy", "go"],
  ["mobile-backend", "jest"],
  ["search-indexer", "pytest"],
  ["notification-hub", "mocha"],
  ["auth-gateway", "go"],
  ["admin-console", "vitest"],
  ["ledger", "junit"],
  ["checkout-web", "jest"],
];
const MODULES = [
  "auth",
  "billing",
  "cart",
  "checkout",
  "orders",
  "payments",
  "search",
  "users",
  "inventory",
  "shipping",
  "reports",
  "webhooks",
  "sessions",
  "pricing",
  "invoices",
  "notifications",
];
const FILES = [
  "handler",
  "service",
  "repository",
  "client",
  "validator",
  "parser",
  "mapper",
  "controller",
  "middleware",
  "scheduler",
  "cache",
  "formatter",
];
const INTEGRATION_FILES = ["repository", "client", "cache"];
/** At least TESTS_PER_FILE verbs, so the tests of one file never share a name. */
const VERBS = [
  "creates",
  "updates",
  "deletes",
  "returns",
  "rejects",
  "validates",
  "parses",
  "retries",
  "caches",
  "paginates",
  "sorts",
  "filters",
  "serializes",
  "handles",
  "refreshes",
  "emits",
];
const OBJECTS = [
  "a new invoice",
  "the session token",
  "an empty cart",
  "duplicate orders",
  "expired coupons",
  "the webhook payload",
  "a missing user",
  "large uploads",
  "concurrent requests",
  "the default currency",
  "partial refunds",
  "unicode names",
];
const CONDITIONS = [
  "when the input is valid",
  "when the token has expired",
  "after a network timeout",
  "with an empty body",
  "for a guest user",
  "after a retry",
  "in dry run mode",
  "when the cache is cold",
];
const TESTS_PER_FILE = 8;
const BRANCH_PREFIXES = ["feature", "fix", "chore", "renovate"];
const BRANCH_SLUGS = [
  "new-checkout-flow",
  "rate-limit-headers",
  "upgrade-dependencies",
  "refund-rounding",
  "dark-mode",
  "pagination-cursor",
  "retry-webhooks",
  "audit-log-export",
  "faster-search",
  "sso-login",
];
const FLAKY_MESSAGES = [
  'Error: Timeout of 5000ms exceeded. For async tests and hooks, ensure "done()" is called',
  "AssertionError: expected status 200 but received 503 (Service Unavailable)",
  "Error: socket hang up (ECONNRESET)",
  'TimeoutError: locator("[data-testid=submit]") was not visible after 3000ms',
  "AssertionError: expected [ 2, 1, 3 ] to deeply equal [ 1, 2, 3 ]",
  "Error: deadlock detected while waiting for ShareLock on transaction",
];
const BROKEN_MESSAGES = [
  "TypeError: Cannot read properties of undefined (reading 'id')",
  "ReferenceError: formatCurrency is not defined",
  "AssertionError: expected 'EUR' to equal 'USD'",
  "Error: Cannot find module '../fixtures/orders.json'",
];
const REGRESSION_MESSAGES = [
  "AssertionError: expected 41 to equal 42",
  "AssertionError: expected undefined to be truthy",
  "Error: expect(received).toMatchSnapshot() - 3 lines changed",
];
const INFRA_MESSAGES = [
  "Error: connect ECONNREFUSED 127.0.0.1:5432",
  "The runner has received a shutdown signal.",
  "Error: ENOSPC: no space left on device, write",
];

// ---------------------------------------------------------------------------------------------------------------
// SQL building blocks. Every value interpolated below is a validated integer, an ISO date or a constant above.

const quote = (value: string) => `'${value.replaceAll("'", "''")}'`;
const textArray = (values: readonly string[]) => `(ARRAY[${values.map(quote).join(", ")}]::text[])`;
/** values[index] for a 0-based SQL integer expression, cycling. */
const pick = (values: readonly string[], index: string) => `${textArray(values)}[1 + (${index}) % ${values.length}]`;

/** Independent pseudo-random streams: each use of randomness has its own. */
const Stream = {
  repoCi: 1,
  kind: 2,
  failP: 3,
  baseMs: 4,
  message: 5,
  branch: 6,
  branchIndex: 7,
  start: 8,
  window: 9,
  upload: 10,
  infra: 11,
  os: 12,
  scheme: 13,
  runNumber: 14,
  attempt1: 15,
  attempt2: 16,
  attempt3: 17,
  duration: 18,
  regression: 19,
  completed: 20,
  auditFailures: 21,
  auditReason: 22,
} as const;

class SeedSql {
  readonly T: number;
  readonly C: number;
  private readonly salt: string;
  private readonly until: string;

  constructor(private readonly o: SeedOptions) {
    this.T = o.tests;
    this.C = o.runs;
    this.salt = `anchorpipe-seed:${o.seed}:`;
    this.until = `${quote(o.until.toISOString())}::timestamptz`;
  }

  /** A uniform double in [0, 1) from a bigint key, per stream. */
  rnd(stream: number, key: string): string {
    return `((hashint8extended((${key})::bigint, ${this.o.seed * 64 + stream}) & 9007199254740991)::float8 / 9007199254740992.0)`;
  }

  /** A version-4-shaped uuid from an md5 of the key (some validators check the version and variant). */
  uuid(key: string): string {
    const h = `md5(${quote(this.salt)} || ${key})`;
    return `(substr(${h}, 1, 12) || '4' || substr(${h}, 14, 3) || translate(substr(${h}, 17, 1), '0123456789abcdef', '89ab89ab89ab89ab') || substr(${h}, 18, 15))::uuid`;
  }

  sha256(text: string): string {
    return `encode(sha256(convert_to(${text}, 'UTF8')), 'hex')`;
  }

  /** Repo index r → its attributes. */
  repos(): string {
    const names = REPO_TEMPLATES.map(([name]) => name);
    const frameworks = REPO_TEMPLATES.map(([, framework]) => framework);
    return `SELECT r, ${this.uuid("'repo:' || r")} AS id,
        ${pick(OWNERS, "r - 1")} AS owner_slug,
        ${quote(SEED_OWNER_PREFIX)} || ${pick(OWNERS, "r - 1")} AS owner,
        ${pick(names, "r - 1")} || CASE WHEN r > ${names.length} THEN '-' || (1 + (r - 1) / ${names.length}) ELSE '' END AS name,
        ${pick(frameworks, "r - 1")} AS framework,
        CASE WHEN r % 2 = 1 THEN 2 ELSE 0 END AS retries,
        CASE WHEN r % 4 = 0 THEN 'private' ELSE 'public' END::repo_visibility AS visibility,
        (3 + floor(12 * ${this.rnd(Stream.repoCi, "r")}))::int AS ci_minutes
      FROM generate_series(1, ${this.o.repos}) AS r`;
  }

  /** (repo, test index t) → the test case and its hidden behaviour (kind, failure probability, ...). */
  tests(): string {
    const T = this.T;
    const broken = T >= 5 ? Math.max(1, Math.round(T * 0.02)) : 0;
    const flaky = T >= 2 ? Math.max(1, Math.round(T * 0.1)) : 0;
    const skipped = T >= 10 ? Math.max(1, Math.round(T * 0.02)) : 0;
    const files = `(${pick(FILES, `file_idx / ${MODULES.length}`)} || CASE WHEN file_idx >= ${MODULES.length * FILES.length} THEN (file_idx / ${MODULES.length * FILES.length} + 1)::text ELSE '' END)`;
    const phrase = "(verb || ' ' || object || ' ' || condition)";
    return `SELECT g.*,
        CASE WHEN kind_rank <= ${broken} THEN 'broken' WHEN kind_rank <= ${broken + flaky} THEN 'flaky'
             WHEN kind_rank <= ${broken + flaky + skipped} THEN 'skipped' ELSE 'stable' END AS kind
      FROM (
        SELECT f.*,
          row_number() OVER (PARTITION BY r ORDER BY ${this.rnd(Stream.kind, "tkey")}, t) AS kind_rank,
          0.03 + 0.37 * power(${this.rnd(Stream.failP, "tkey")}, 2) AS fail_p,
          floor(${this.C} * 0.9 * ${this.rnd(Stream.failP, "tkey")})::int AS broken_from,
          (3 * exp(6.3 * ${this.rnd(Stream.baseMs, "tkey")})
             * CASE WHEN framework = 'playwright' THEN 15 WHEN file = ANY(${textArray(INTEGRATION_FILES)}) THEN 3 ELSE 1 END) AS base_ms,
          CASE framework
            WHEN 'pytest' THEN 'tests/' || module || '/test_' || file || '.py'
            WHEN 'junit' THEN 'src/test/java/com/' || owner_slug || '/' || module || '/' || initcap(file) || 'Test.java'
            WHEN 'go' THEN 'internal/' || module || '/' || file || '_test.go'
            WHEN 'playwright' THEN 'e2e/' || module || '/' || file || '.spec.ts'
            WHEN 'mocha' THEN 'test/' || module || '/' || file || '.spec.js'
            ELSE 'src/' || module || '/' || file || '.test.ts'
          END AS path,
          CASE framework
            WHEN 'pytest' THEN 'test_' || replace(${phrase}, ' ', '_')
            WHEN 'junit' THEN verb || replace(initcap(object || ' ' || condition), ' ', '')
            WHEN 'go' THEN 'Test' || initcap(file) || replace(initcap(verb || ' ' || object), ' ', '') || '/' || replace(condition, ' ', '_')
            ELSE ${phrase}
          END AS name,
          CASE framework
            WHEN 'pytest' THEN 'tests.' || module || '.test_' || file || '.Test' || initcap(file)
            WHEN 'junit' THEN 'com.' || owner_slug || '.' || module || '.' || initcap(file) || 'Test'
            WHEN 'go' THEN 'github.com/' || owner || '/' || repo_name || '/internal/' || module
            ELSE initcap(module) || ' › ' || file
          END AS suite,
          (10 + (t * 7) % 290) AS line,
          floor(1000 * ${this.rnd(Stream.message, "tkey")})::int AS message_idx
        FROM (
          SELECT rp.r, rp.id AS repo_id, rp.owner, rp.owner_slug, rp.name AS repo_name, rp.framework, rp.retries, t,
            rp.r::bigint * 1048576 + t AS tkey,
            ${this.uuid("'test:' || rp.r || ':' || t")} AS id,
            ${pick(MODULES, "file_idx")} AS module, ${files} AS file,
            ${pick(VERBS, `file_idx * 3 + k`)} AS verb,
            ${pick(OBJECTS, `file_idx * 5 + k * 7`)} AS object,
            ${pick(CONDITIONS, `file_idx + k * 3`)} AS condition
          FROM (${this.repos()}) AS rp
          CROSS JOIN generate_series(1, ${T}) AS t
          CROSS JOIN LATERAL (SELECT (t - 1) / ${TESTS_PER_FILE} AS file_idx, (t - 1) % ${TESTS_PER_FILE} AS k) AS ix
        ) AS f
      ) AS g`;
  }

  /** Columns derived from tests(): tags, a description (the only place the hidden behaviour shows), messages. */
  testCaseExtras(): string {
    const at = (messages: string[]) => `${pick(messages, "message_idx")} || E'\\n    at ' || path || ':' || line`;
    return `CASE WHEN framework = 'playwright' THEN ARRAY['e2e'] WHEN path ~ '(repository|client|cache)' THEN ARRAY['integration'] ELSE ARRAY['unit'] END
        || CASE WHEN base_ms > 1000 THEN ARRAY['slow'] ELSE '{}'::text[] END AS tags,
      'Seeded test: ' || CASE kind
        WHEN 'flaky' THEN 'flaky, fails about ' || round(100 * fail_p) || '% of runs'
        WHEN 'broken' THEN 'broken from CI run ' || (broken_from + 1) || ' on'
        WHEN 'skipped' THEN 'always skipped'
        ELSE 'stable' END AS description,
      ${at(FLAKY_MESSAGES)} AS flaky_message,
      ${at(BROKEN_MESSAGES)} AS broken_message,
      ${at(REGRESSION_MESSAGES)} AS regression_message`;
  }

  /** (repo, CI run c) → the ingestion: commit, branch, timing, environment. */
  ciRuns(): string {
    const C = this.C;
    const branches = Math.max(2, Math.ceil(C / 10));
    const spanSeconds = this.o.days * 86_400 - 3_600;
    const slug = `${pick(BRANCH_PREFIXES, "bidx")} || '/' || ${pick(BRANCH_SLUGS, "bidx")} || CASE WHEN bidx >= ${BRANCH_SLUGS.length} THEN '-' || (bidx / ${BRANCH_SLUGS.length} + 1) ELSE '' END`;
    return `SELECT b.*,
        left(md5(${quote(this.salt)} || r || ':' || commit_key) || md5(commit_key || ':' || r || ${quote(this.salt)}), 40) AS commit_sha,
        hashtextextended(r || ':' || commit_key, ${this.o.seed}) AS commit_seed,
        started_at + window_ms * interval '1 millisecond' + (5 + 85 * ${this.rnd(Stream.upload, "ckey")}) * interval '1 second' AS received_at,
        CASE framework WHEN 'pytest' THEN 'python-3.12' WHEN 'junit' THEN 'java-21' WHEN 'go' THEN 'go-1.23' ELSE 'node-22' END AS runtime,
        CASE WHEN ${this.rnd(Stream.os, "ckey")} < 0.8 THEN 'ubuntu-22.04' WHEN ${this.rnd(Stream.os, "ckey")} < 0.95 THEN 'ubuntu-24.04' ELSE 'macos-14' END AS os,
        CASE WHEN ${this.rnd(Stream.scheme, "ckey")} < 0.75 THEN 'v2' ELSE 'v1' END AS signature_scheme,
        (7000000000 + r::bigint * 100000000 + c * 37 + floor(30 * ${this.rnd(Stream.runNumber, "ckey")}))::text AS run_id,
        ${this.sha256(`${quote(this.salt)} || 'payload:' || r || ':' || c`)} AS payload_sha256
      FROM (
        SELECT a.*,
          CASE WHEN feature THEN ${slug} ELSE 'main' END AS branch,
          CASE WHEN feature THEN (100 + bidx * 3 + r % 3)::text END AS pull_request,
          CASE WHEN feature THEN 'b' || bidx || ':' || (c - 1) / 5 ELSE 'm' || floor((c - 1) * 0.6)::int END AS commit_key
        FROM (
          SELECT rp.r, rp.id AS repo_id, rp.framework, rp.retries, c,
            ${this.uuid("'ci:' || rp.r || ':' || c")} AS id,
            rp.r::bigint * 1048576 + c AS ckey,
            ${this.rnd(Stream.branch, "rp.r::bigint * 1048576 + c")} >= 0.7 AS feature,
            floor(${branches} * ${this.rnd(Stream.branchIndex, "rp.r::bigint * 1048576 + c")})::int AS bidx,
            ${this.until} - interval '${this.o.days} days'
              + ((c - 1) + 0.8 * ${this.rnd(Stream.start, "rp.r::bigint * 1048576 + c")}) * ${spanSeconds / C} * interval '1 second' AS started_at,
            rp.ci_minutes * 60000 * (0.85 + 0.3 * ${this.rnd(Stream.window, "rp.r::bigint * 1048576 + c")}) AS window_ms,
            ${this.rnd(Stream.infra, "rp.r::bigint * 1048576 + c")} < 0.02 AS infra,
            ${pick(INFRA_MESSAGES, "c")} AS infra_message
          FROM (${this.repos()}) AS rp
          CROSS JOIN generate_series(1, ${C}) AS c
        ) AS a
      ) AS b`;
  }

  ciColumns(): string {
    return `*, jsonb_build_object('ci', 'github-actions', 'os', os, 'runtime', runtime, 'runner', 'hosted') AS environment,
      ${this.sha256("jsonb_build_object('ci', 'github-actions', 'os', os, 'runtime', runtime, 'runner', 'hosted')::text")} AS environment_hash`;
  }

  /**
   * One row per (test, CI run) whose CI run was received in `received` (an SQL condition on received_at, the
   * runs' created_at), inserted into `into` (test_runs, or one of its partitions while detached). Layer a
   * decides the outcome, layer b the attempts; OFFSET 0 keeps each layer's columns computed once instead of
   * being inlined into every reference.
   *
   * Only tests and CI runs whose rows exist (same id, same repo) are used, so every run has its parents by
   * construction even when the foreign-key triggers are off; the caller checks that none was left out. The
   * rows go in CI run by CI run, as uploads write them: a commit's or an upload's runs share pages.
   */
  testRuns(into = "test_runs", received = "true"): string {
    const runKey = "(t.tkey * 1048576 + ci.c)";
    const runKeyB = "(tkey * 1048576 + c)";
    return `WITH t AS MATERIALIZED (SELECT r, tkey, t, id, kind, fail_p, broken_from, base_ms, flaky_message, broken_message, regression_message
                                FROM (SELECT *, ${this.testCaseExtras()} FROM (${this.tests()}) AS x) AS y
                                WHERE EXISTS (SELECT FROM test_cases p WHERE p.id = y.id AND p.repo_id = y.repo_id)),
         -- Each repo's tests as arrays, unnested per CI run below: the rows come out CI run by CI run.
         repo_tests AS MATERIALIZED (SELECT r, array_agg(tkey ORDER BY t) AS tkey, array_agg(t ORDER BY t) AS t, array_agg(id ORDER BY t) AS id, array_agg(kind ORDER BY t) AS kind, array_agg(fail_p ORDER BY t) AS fail_p, array_agg(broken_from ORDER BY t) AS broken_from, array_agg(base_ms ORDER BY t) AS base_ms, array_agg(flaky_message ORDER BY t) AS flaky_message, array_agg(broken_message ORDER BY t) AS broken_message, array_agg(regression_message ORDER BY t) AS regression_message FROM t GROUP BY r),
         ci AS MATERIALIZED (SELECT ${this.ciColumns()} FROM (${this.ciRuns()}) AS z
                             WHERE (${received})
                               AND EXISTS (SELECT FROM ingestions p WHERE p.id = z.id AND p.repo_id = z.repo_id)
                             ORDER BY received_at, r)
      INSERT INTO ${into} (repo_id, test_case_id, ingestion_id, commit_sha, branch, pull_request, run_id, status, duration_ms,
                             started_at, rerun_count, failure_details, environment_hash, metadata, created_at)
      SELECT repo_id, test_case_id, ingestion_id, commit_sha, branch, pull_request, run_id, status::test_run_status AS status,
        CASE WHEN status = 'skip' THEN 0
             ELSE round(base_ms * (0.75 + 0.5 * jitter) * (1 + rerun_count) * CASE WHEN jitter > 0.985 THEN 6 ELSE 1 END)::int END
          AS duration_ms,
        started_at, rerun_count,
        CASE WHEN status = 'fail' THEN CASE outcome WHEN 'b' THEN broken_message WHEN 'i' THEN infra_message
                                                  WHEN 'g' THEN regression_message ELSE flaky_message END END
          AS failure_details,
        environment_hash,
        CASE WHEN rerun_count > 0 THEN jsonb_build_object('attempts', rerun_count + 1) END AS metadata,
        created_at
      FROM (
        SELECT b.*,
          CASE outcome WHEN 's' THEN 'skip' WHEN 'p' THEN 'pass' WHEN 'f' THEN CASE WHEN failed_attempts > retries THEN 'fail' ELSE 'pass' END
                       ELSE 'fail' END AS status,
          CASE outcome WHEN 'f' THEN least(failed_attempts, retries) WHEN 'b' THEN retries WHEN 'g' THEN retries
                       WHEN 'i' THEN retries ELSE 0 END AS rerun_count
        FROM (
          SELECT a.*,
            CASE WHEN outcome <> 'f' THEN 0
                 WHEN retries = 0 OR ${this.rnd(Stream.attempt2, runKeyB)} >= fail_p THEN 1
                 WHEN retries = 1 OR ${this.rnd(Stream.attempt3, runKeyB)} >= fail_p THEN 2
                 ELSE 3 END AS failed_attempts
          FROM (
            SELECT ci.repo_id, t.id AS test_case_id, ci.id AS ingestion_id, ci.commit_sha, ci.branch, ci.pull_request, ci.run_id,
              ci.environment_hash, ci.received_at AS created_at, ci.retries, ci.infra_message,
              ci.started_at + (t.t - 1) * ci.window_ms / ${this.T} * interval '1 millisecond' AS started_at,
              t.tkey, ci.c, t.fail_p, t.base_ms, t.flaky_message, t.broken_message, t.regression_message,
              ${this.rnd(Stream.duration, runKey)} AS jitter,
              CASE
                WHEN t.kind = 'skipped' THEN 's'
                WHEN t.kind = 'broken' AND ci.c > t.broken_from THEN 'b'
                WHEN ci.infra AND ${this.rnd(Stream.attempt1, runKey)} < 0.6 THEN 'i'
                WHEN ci.feature AND ((hashint8extended(t.tkey, ci.commit_seed) & 9007199254740991)::float8 / 9007199254740992.0) < 0.015 THEN 'g'
                WHEN t.kind = 'flaky' AND ${this.rnd(Stream.attempt1, runKey)} < t.fail_p THEN 'f'
                ELSE 'p'
              END AS outcome
            FROM ci JOIN repo_tests rt ON rt.r = ci.r
            CROSS JOIN LATERAL unnest(rt.tkey, rt.t, rt.id, rt.kind, rt.fail_p, rt.broken_from, rt.base_ms, rt.flaky_message, rt.broken_message, rt.regression_message) AS t(tkey, t, id, kind, fail_p, broken_from, base_ms, flaky_message, broken_message, regression_message)
            OFFSET 0
          ) AS a
          OFFSET 0
        ) AS b
        OFFSET 0
      ) AS run`;
  }

  /** The months the seeded runs' created_at can fall in (with a day of slack either side). */
  ensurePartitions(): string {
    return `SELECT anchorpipe_ensure_test_run_partitions(
        (12 * (extract(year FROM e) - extract(year FROM s)) + extract(month FROM e) - extract(month FROM s))::int,
        s::date) AS name
      FROM (SELECT ${this.until} - interval '${this.o.days + 1} days' AS s, ${this.until} + interval '1 day' AS e) AS span`;
  }

  /** The monthly partitions of test_runs that the seeded runs fall in, with their bounds as SQL literals. */
  seededPartitions(): string {
    return `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'public.test_runs'::regclass AND c.relname ~ '^test_runs_p[0-9]{4}_[0-9]{2}$'
        AND to_date(substr(c.relname, 12), 'YYYY_MM') < ${this.until} + interval '1 day'
        AND to_date(substr(c.relname, 12), 'YYYY_MM') + interval '1 month' > ${this.until} - interval '${this.o.days + 1} days'
      ORDER BY c.relname`;
  }

  /**
   * People to read as: per repo an admin, a member and a read-only user with that role on it, and one
   * platform admin. They have no tokens (a token is a secret shown once: `npm run user:create` or
   * src/services/tokens.ts make one); preferences.seed marks them for --reset.
   */
  users(): string {
    const roles = ["admin", "member", "read_only"];
    return `SELECT id, login AS github_login, login || '@seed.anchorpipe.test' AS email, display AS name,
        ${this.until} - interval '${this.o.days + 40} days' AS created_at,
        jsonb_build_object('seed', jsonb_build_object('seed', ${this.o.seed})) AS preferences, r = 0 AS is_platform_admin
      FROM (
        SELECT rp.r, ${this.uuid("'user:' || rp.r || ':' || k")} AS id,
          'seed-' || rp.name || '-' || replace(${pick(roles, "k - 1")}, '_', '-') AS login,
          initcap(replace(${pick(roles, "k - 1")}, '_', ' ')) || ' of ' || rp.name AS display
        FROM (${this.repos()}) AS rp CROSS JOIN generate_series(1, ${roles.length}) AS k
        UNION ALL
        SELECT 0, ${this.uuid("'user:operator'")}, 'seed-operator', 'Platform operator'
      ) AS u`;
  }

  /**
   * Replaces the seeded users by these: the same ones stay (their audit rows keep their actor), others go
   * (their audit rows stay, with a null actor).
   */
  deleteOtherUsers(): string {
    return `DELETE FROM users WHERE ${SEEDED_USERS} AND id NOT IN (SELECT id FROM (${this.users()}) AS u)`;
  }

  upsertUsers(): string {
    return `INSERT INTO users (id, github_login, email, name, created_at, preferences, is_platform_admin)
      SELECT id, github_login, email, name, created_at, preferences, is_platform_admin FROM (${this.users()}) AS u
      ON CONFLICT (id) DO UPDATE SET github_login = excluded.github_login, email = excluded.email, name = excluded.name,
        created_at = excluded.created_at, preferences = excluded.preferences,
        is_platform_admin = excluded.is_platform_admin, deleted_at = NULL`;
  }

  userRoles(): string {
    const roles = ["admin", "member", "read_only"];
    return `INSERT INTO user_repo_roles (id, user_id, repo_id, role, assigned_by, created_at, updated_at)
      SELECT ${this.uuid("'role:' || rp.r || ':' || k")}, ${this.uuid("'user:' || rp.r || ':' || k")}, rp.id,
        (${pick(roles, "k - 1")})::repo_role, ${this.uuid("'user:' || rp.r || ':1'")},
        ${this.until} - interval '${this.o.days} days', ${this.until} - interval '${this.o.days} days'
      FROM (${this.repos()}) AS rp CROSS JOIN generate_series(1, ${roles.length}) AS k`;
  }

  /**
   * The audit history of the seeded repos, shaped as the services write it: each upload's hmac_auth_success
   * and ingestion_accepted; refused uploads before it (hmac_auth_failure, at most one per reason and
   * minute as in ADR 0005; 0 to 25 per CI run, about 8 on average: forks and runners without the secret);
   * the users' creation, roles and tokens; a few config changes. Ids are derived like the other rows'.
   * The table is append-only, so a --reset keeps the old rows and ON CONFLICT skips rows already there.
   */
  auditLogs(seededRepos: string): string {
    const reasons = ["signature_mismatch", "no_active_secret", "timestamp_outside_window", "signature_mismatch"];
    const agent = "'anchorpipe-uploader/1.0 (seed)'";
    const ip = (key: string) =>
      `('10.' || (hashtextextended(${key}, ${this.o.seed}) & 255) || '.' || (hashtextextended(${key}, ${this.o.seed} + 1) & 255) || '.7')::inet`;
    const key = "hashtextextended(i.id::text, 0)";
    return `INSERT INTO audit_logs (id, actor_id, action, subject, subject_id, description, metadata, request_id, user_agent,
                               ip_address, created_at)
      SELECT ${this.uuid("'audit:' || i.id || ':' || a.action")}, NULL::uuid, a.action::audit_action, 'repo'::audit_subject, i.repo_id::text,
        a.description, jsonb_build_object('ingestionId', i.id, 'runId', i.run_id, 'scheme', i.signature_scheme,
                                          'tests', i.tests_total),
        'seed-' || left(md5(i.id::text), 16), ${agent}, ${ip("i.id::text")}, i.completed_at
      FROM ingestions i
      CROSS JOIN (VALUES ('hmac_auth_success', 'upload signature verified'),
                         ('ingestion_accepted', 'test results stored')) AS a(action, description)
      WHERE i.repo_id IN (${seededRepos}) AND i.completed_at IS NOT NULL
      UNION ALL
      SELECT ${this.uuid("'audit:' || i.id || ':failure:' || f")}, NULL, 'hmac_auth_failure', 'security', i.repo_id::text,
        'upload signature rejected',
        jsonb_build_object('reason', ${pick(reasons, `f + floor(4 * ${this.rnd(Stream.auditReason, key)})::int`)},
                           'scheme', CASE WHEN f % 3 = 0 THEN 'v1' ELSE 'v2' END,
                           'windowStart', to_char(date_trunc('minute', i.received_at - f * interval '1 minute') AT TIME ZONE 'UTC',
                                                  'YYYY-MM-DD"T"HH24:MI:SS.000"Z"')),
        'seed-' || left(md5(i.id::text || ':' || f), 16), ${agent}, ${ip("i.id::text || ':' || f")},
        date_trunc('minute', i.received_at - f * interval '1 minute') + (f % 50) * interval '1 second'
      FROM ingestions i
      CROSS JOIN LATERAL generate_series(1, floor(26 * power(${this.rnd(Stream.auditFailures, key)}, 2))::int) AS f
      WHERE i.repo_id IN (${seededRepos})
      UNION ALL
      SELECT ${this.uuid("'audit:user:' || u.id")}, NULL, 'user_created', 'user', u.id::text, 'user created',
        jsonb_build_object('platformAdmin', u.is_platform_admin), NULL, NULL, NULL, u.created_at
      FROM users u WHERE u.preferences ? 'seed' AND u.github_login LIKE 'seed-%'
      UNION ALL
      SELECT ${this.uuid("'audit:token:' || u.id")}, u.id, 'token_created', 'token', ${this.uuid("'session:' || u.id")}::text,
        'personal token created', jsonb_build_object('days', 30), NULL, NULL, NULL, u.created_at + interval '1 minute'
      FROM users u WHERE u.preferences ? 'seed' AND u.github_login LIKE 'seed-%'
      UNION ALL
      SELECT ${this.uuid("'audit:role:' || ur.id")}, ur.assigned_by, 'role_assigned', 'repo', ur.repo_id::text, 'role assigned',
        jsonb_build_object('userId', ur.user_id, 'role', ur.role), NULL, NULL, NULL, ur.created_at
      FROM user_repo_roles ur WHERE ur.repo_id IN (${seededRepos})
      UNION ALL
      SELECT ${this.uuid("'audit:config:' || r.id || ':' || g")}, ${this.uuid("'user:' || (r.config->'seed'->>'index') || ':1'")},
        'config_updated', 'configuration', r.id::text, 'repository config updated',
        jsonb_build_object('changed', CASE WHEN g % 2 = 0 THEN '["scoring_threshold"]'::jsonb ELSE '["retention_days"]'::jsonb END),
        NULL, NULL, NULL, r.updated_at + g * interval '${Math.max(1, Math.floor((this.o.days * 24) / 6))} hours'
      FROM repos r CROSS JOIN generate_series(1, 5) AS g WHERE r.id IN (${seededRepos})
      ON CONFLICT (id) DO NOTHING`;
  }
}

/** Repos made by this seed: the owner prefix and config.seed both. */
const SEEDED_REPOS = `SELECT id FROM repos WHERE owner LIKE '${SEED_OWNER_PREFIX}%' AND config ? 'seed'`;
/** Users made by this seed: the login prefix and preferences.seed both. */
const SEEDED_USERS = `github_login LIKE '${SEED_OWNER_PREFIX}%' AND preferences ? 'seed'`;

/** Flake scores from the last 50 non-skipped runs of each seeded test (a simple heuristic, not the real model). */
function flakeScoresSql(until: string): string {
  const weights = { volatility: 0.4, failRate: 0.25, recencyFail: 0.2, retryRecoveries: 0.15 };
  return `WITH recent AS (
      SELECT tr.test_case_id, tr.status, tr.rerun_count, tr.started_at, tr.commit_sha,
        i.tests_failed::float8 / greatest(i.tests_total, 1) AS run_fail_share,
        row_number() OVER w AS pos, lag(tr.status) OVER w AS newer_status
      FROM test_runs tr JOIN ingestions i ON i.id = tr.ingestion_id
      WHERE tr.repo_id IN (${SEEDED_REPOS}) AND tr.status <> 'skip'
      WINDOW w AS (PARTITION BY tr.test_case_id ORDER BY tr.started_at DESC)
    ), considered AS (
      SELECT * FROM recent WHERE pos <= 50
    ), contradictions AS (
      -- A commit that both passed and failed, not counting failures in uploads where most tests failed (outages).
      SELECT test_case_id, count(*) FILTER (WHERE has_pass AND has_fail) AS n
      FROM (SELECT test_case_id, commit_sha, bool_or(status = 'pass') AS has_pass, bool_or(status = 'fail' AND run_fail_share <= 0.3) AS has_fail
            FROM considered GROUP BY test_case_id, commit_sha) AS per_commit
      GROUP BY test_case_id
    ), agg AS (
      SELECT test_case_id, count(*) AS n,
        count(*) FILTER (WHERE status = 'pass') AS passes,
        count(*) FILTER (WHERE status = 'fail') AS fails,
        count(*) FILTER (WHERE newer_status IS NOT NULL AND newer_status <> status) AS flips,
        sum(CASE WHEN status = 'fail' THEN power(0.9::float8, pos - 1) ELSE 0 END) / sum(power(0.9::float8, pos - 1)) AS recency_fail,
        count(*) FILTER (WHERE status = 'fail' AND run_fail_share > 0.3) AS clustered_fails,
        count(*) FILTER (WHERE status = 'pass' AND rerun_count > 0) AS recoveries,
        coalesce(min(pos) FILTER (WHERE status = 'pass'), count(*) + 1) - 1 AS trailing_fails,
        min(started_at) FILTER (WHERE status = 'fail' OR rerun_count > 0) AS first_evidence,
        max(started_at) FILTER (WHERE status = 'fail' OR rerun_count > 0) AS last_evidence
      FROM considered GROUP BY test_case_id
    ), factors AS (
      SELECT tc.id AS test_case_id, tc.repo_id, coalesce(a.n, 0) AS n, coalesce(a.fails, 0) AS fails,
        coalesce(a.recoveries, 0) AS recoveries, coalesce(a.trailing_fails, 0) AS trailing_fails,
        coalesce(k.n, 0) AS contradictions, a.first_evidence, a.last_evidence,
        coalesce(a.passes::float8 / nullif(a.n, 0), 1) AS pass_rate,
        coalesce(a.flips::float8 / greatest(a.n - 1, 1), 0) AS volatility,
        coalesce(a.recency_fail, 0) AS recency_fail,
        coalesce(a.clustered_fails::float8 / nullif(a.fails, 0), 0) AS clustering,
        (a.trailing_fails >= 5 OR (a.n >= 3 AND a.passes = 0)) IS TRUE AS broken
      FROM test_cases tc
      LEFT JOIN agg a ON a.test_case_id = tc.id
      LEFT JOIN contradictions k ON k.test_case_id = tc.id
      WHERE tc.repo_id IN (${SEEDED_REPOS})
    ), scored AS (
      SELECT f.*,
        least(100, round(100 * (
          ${weights.volatility} * least(1, volatility * 2.5)
          + ${weights.failRate} * least(1, (1 - pass_rate) * 2.5) * (1 - 0.5 * clustering)
          + ${weights.recencyFail} * recency_fail
          + ${weights.retryRecoveries} * least(1, recoveries / 3.0))))::smallint AS raw_score,
        (contradictions > 0 OR recoveries > 0) AS evidence
      FROM factors f
    )
    INSERT INTO flake_scores (test_case_id, repo_id, window_n, runs_considered, pass_rate, volatility, recency_fail, clustering,
                              score, class, first_flaky_at, last_flaky_at, ml_prediction_data, updated_at)
    SELECT test_case_id, repo_id, 50, n, pass_rate, volatility, recency_fail, clustering,
      CASE WHEN broken THEN least(raw_score, 20) ELSE raw_score END, cls::flake_class,
      CASE WHEN cls IN ('flaky', 'highly_flaky') THEN first_evidence END,
      CASE WHEN cls IN ('flaky', 'highly_flaky') THEN last_evidence END,
      jsonb_build_object(
        'model', 'seed-heuristic',
        'factors', jsonb_build_object('pass_rate', round(pass_rate::numeric, 4), 'volatility', round(volatility::numeric, 4),
                                      'recency_fail', round(recency_fail::numeric, 4), 'clustering', round(clustering::numeric, 4)),
        'weights', ${quote(JSON.stringify(weights))}::jsonb,
        'evidence', jsonb_build_object('runs_considered', n, 'failures', fails, 'contradictions', contradictions,
                                       'retry_recoveries', recoveries, 'trailing_failures', trailing_fails)),
      ${until}
    FROM (
      SELECT s.*, CASE WHEN broken THEN 'broken'
                       WHEN evidence AND raw_score >= 60 THEN 'highly_flaky'
                       WHEN evidence AND raw_score >= 15 THEN 'flaky'
                       WHEN raw_score >= 15 THEN 'suspect'
                       ELSE 'stable' END AS cls
      FROM scored s
    ) AS classified`;
}

/** A partition of test_runs taken out for loading, and what it needs to go back. */
interface DetachedPartition {
  name: string;
  /** `FOR VALUES FROM (…) TO (…)` */
  bound: string;
  /** The bounds as SQL literals. */
  from: string;
  to: string;
  /** The partition's indexes and the constraints (primary key) that own one, as they were. */
  indexes: { name: string; definition: string; constraint: string | null }[];
}

/**
 * Detaches the monthly partitions the seeded runs go to and drops their indexes, so the runs go in without
 * index maintenance. All or nothing: where the role may not (it does not own test_runs), nothing changes
 * and the runs go in through the parent.
 */
async function detachPartitions(client: pg.PoolClient, q: SeedSql): Promise<DetachedPartition[]> {
  await client.query("SAVEPOINT seed_detach");
  try {
    const detached: DetachedPartition[] = [];
    const { rows } = await client.query(q.seededPartitions());
    for (const { name, bound } of rows as { name: string; bound: string }[]) {
      const range = /^FOR VALUES FROM \(('[^']*')\) TO \(('[^']*')\)$/.exec(bound);
      if (!range) throw new SeedError(`unexpected bound of ${name}: ${bound}`);
      const { rows: indexes } = await client.query(
        `SELECT ic.relname AS name, pg_get_indexdef(x.indexrelid) AS index_def, con.conname AS constraint,
           pg_get_constraintdef(con.oid) AS constraint_def
         FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
         LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid
         WHERE x.indrelid = $1::regclass ORDER BY ic.relname`,
        [`public.${name}`],
      );
      const table = `public.${quoteIdent(name)}`;
      await client.query(`ALTER TABLE public.test_runs DETACH PARTITION ${table}`);
      for (const index of indexes) {
        await client.query(
          index.constraint
            ? `ALTER TABLE ${table} DROP CONSTRAINT ${quoteIdent(index.constraint)}`
            : `DROP INDEX public.${quoteIdent(index.name)}`,
        );
      }
      detached.push({
        name,
        bound,
        from: `${range[1]}::timestamptz`,
        to: `${range[2]}::timestamptz`,
        indexes: indexes.map((index) => ({
          name: index.name,
          constraint: index.constraint,
          definition: index.constraint
            ? `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(index.constraint)} ${index.constraint_def}`
            : index.index_def,
        })),
      });
    }
    await client.query("RELEASE SAVEPOINT seed_detach");
    return detached;
  } catch (error) {
    if (error instanceof SeedError) throw error;
    await client.query("ROLLBACK TO SAVEPOINT seed_detach");
    return [];
  }
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** SET LOCAL a setting if this role may; a refusal leaves the transaction usable. */
async function trySet(client: pg.PoolClient, name: string, value: string): Promise<boolean> {
  await client.query("SAVEPOINT seed_try_set");
  try {
    await client.query(`SET LOCAL ${name} = ${value}`);
    await client.query("RELEASE SAVEPOINT seed_try_set");
    return true;
  } catch {
    await client.query("ROLLBACK TO SAVEPOINT seed_try_set");
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------

export async function seed(pool: pg.Pool, options: Partial<SeedOptions> = {}): Promise<SeedResult> {
  const o = resolveOptions(options);
  const q = new SeedSql(o);
  const until = `${quote(o.until.toISOString())}::timestamptz`;
  const steps: SeedStep[] = [];
  const started = performance.now();
  const client = await pool.connect();

  async function step(name: string, sql: string): Promise<pg.QueryResult> {
    const t0 = performance.now();
    const result = await client.query(sql);
    const done = { name, rows: result.rowCount ?? 0, ms: Math.round(performance.now() - t0) };
    steps.push(done);
    o.onStep?.(done);
    return result;
  }

  try {
    await client.query("BEGIN");
    const { rows: schema } = await client.query("SELECT to_regclass('public.test_runs')::text AS found");
    if (schema[0].found === null) {
      throw new SeedError("the database has no test_runs table: run `npm run db:migrate` first");
    }
    // Sorts for the score windows; local to this transaction.
    await client.query("SET LOCAL work_mem = '256MB'");

    let deletedRepos = 0;
    const { rows: existing } = await client.query(`SELECT count(*) AS n FROM (${SEEDED_REPOS}) AS s`);
    if (Number(existing[0].n) > 0) {
      if (!o.reset) {
        throw new SeedError(
          `${existing[0].n} seeded repos (owner ${SEED_OWNER_PREFIX}*) already exist: pass --reset to replace them`,
        );
      }
      // Runs first, in one statement: every run that points at a seeded repo, test case or ingestion.
      await step(
        "reset: delete seeded test runs",
        `DELETE FROM test_runs WHERE repo_id IN (${SEEDED_REPOS})
           OR test_case_id IN (SELECT id FROM test_cases WHERE repo_id IN (${SEEDED_REPOS}))
           OR ingestion_id IN (SELECT id FROM ingestions WHERE repo_id IN (${SEEDED_REPOS}))`,
      );
      deletedRepos = (await step("reset: delete seeded repos", `DELETE FROM repos WHERE id IN (${SEEDED_REPOS})`))
        .rowCount!;
    }

    const partitions = await step("partitions", q.ensurePartitions());
    const partitionsCreated = partitions.rows.map((row) => String(row.name));

    const repos = await step(
      "repos",
      `INSERT INTO repos (id, owner, name, default_branch, visibility, config, created_at, updated_at)
       SELECT id, owner, name, 'main', visibility,
         jsonb_build_object('seed', jsonb_build_object('seed', ${o.seed}, 'index', r, 'framework', framework, 'retries', retries)),
         ${until} - interval '${o.days} days' - (30 + r) * interval '1 day', ${until} - interval '${o.days} days'
       FROM (${q.repos()}) AS rp`,
    );

    await client.query(q.deleteOtherUsers());
    const users = await step("users", q.upsertUsers());
    await step("user_repo_roles", q.userRoles());

    const testCases = await step(
      "test_cases",
      `INSERT INTO test_cases (id, repo_id, path, name, framework, suite, tags, description)
       SELECT id, repo_id, path, name, framework, suite, tags, description
       FROM (SELECT *, ${q.testCaseExtras()} FROM (${q.tests()}) AS x) AS tc`,
    );

    // Counts and the response are filled in once the runs exist.
    const ingestions = await step(
      "ingestions",
      `INSERT INTO ingestions (id, repo_id, idempotency_key, commit_sha, run_id, framework, branch, pull_request, environment,
                               environment_hash, signature_scheme, tests_total, tests_failed, tests_skipped, payload_sha256,
                               response, received_at, completed_at)
       SELECT id, repo_id,
         CASE WHEN signature_scheme = 'v2' THEN 'msg_' || left(md5('webhook-id:' || payload_sha256), 26)
              ELSE ${q.sha256("repo_id || ':' || commit_sha || ':' || run_id || ':' || framework")} END,
         commit_sha, run_id, framework, branch, pull_request, environment, environment_hash, signature_scheme,
         ${o.tests}, 0, 0, payload_sha256, '{}'::jsonb, received_at,
         received_at + (40 + floor(700 * ${q.rnd(Stream.completed, "ckey")})) * interval '1 millisecond'
       FROM (SELECT ${q.ciColumns()} FROM (${q.ciRuns()}) AS z) AS ci`,
    );

    // Row-by-row RI checks are about half the cost of the biggest insert; the runs are made from their
    // parents' rows (testRuns()), and counted below. Index maintenance row by row is most of the rest, on
    // a table far larger than shared_buffers: where allowed, the partitions are loaded detached, unindexed.
    const bulkLoaded = o.bulkLoad && (await trySet(client, "session_replication_role", "replica"));
    const detached = bulkLoaded ? await detachPartitions(client, q) : [];
    let runCount = 0;
    const loaded = (p: DetachedPartition) => `(received_at >= ${p.from} AND received_at < ${p.to})`;
    for (const p of detached) {
      runCount += (await step(`test_runs (bulk load) ${p.name}`, q.testRuns(`public.${p.name}`, loaded(p)))).rowCount!;
    }
    const rest = detached.length ? `NOT (${detached.map(loaded).join(" OR ")})` : "true";
    runCount += (await step(bulkLoaded ? "test_runs (bulk load)" : "test_runs", q.testRuns("test_runs", rest)))
      .rowCount!;
    if (bulkLoaded) await client.query("SET LOCAL session_replication_role = origin");
    if (detached.length) {
      await client.query("SET LOCAL maintenance_work_mem = '512MB'");
      for (const p of detached) {
        for (const index of p.indexes) await step(`test_runs: index ${index.name}`, index.definition);
        // The new indexes and the foreign keys are taken over as the parent's; one scan checks the bound.
        await step(
          `test_runs: attach ${p.name}`,
          `ALTER TABLE public.test_runs ATTACH PARTITION public.${quoteIdent(p.name)} ${p.bound}`,
        );
      }
    }
    const expectedRuns = o.repos * o.tests * o.runs;
    if (runCount !== expectedRuns) {
      throw new SeedError(`internal error: ${runCount} runs made instead of ${expectedRuns} (a parent row is missing)`);
    }

    await step(
      "ingestions: counts and responses",
      `UPDATE ingestions i SET tests_total = a.total, tests_failed = a.failed, tests_skipped = a.skipped,
         response = jsonb_build_object('runId', i.run_id, 'ingestionId', i.id, 'message', 'Test report received',
           'summary', jsonb_build_object('tests_parsed', a.total, 'tests_failed', a.failed, 'tests_skipped', a.skipped,
                                         'retry_recoveries', a.recovered),
           'isDuplicate', false)
       FROM (SELECT ingestion_id, count(*) AS total, count(*) FILTER (WHERE status = 'fail') AS failed,
               count(*) FILTER (WHERE status = 'skip') AS skipped,
               count(*) FILTER (WHERE status = 'pass' AND rerun_count > 0) AS recovered
             FROM test_runs WHERE repo_id IN (${SEEDED_REPOS}) GROUP BY ingestion_id) AS a
       WHERE i.id = a.ingestion_id`,
    );

    await step(
      "test_cases: first/last seen",
      `UPDATE test_cases tc SET first_seen_at = a.first_seen, last_seen_at = a.last_seen, created_at = a.first_seen,
         updated_at = a.last_seen, last_failure_reason = a.last_failure
       FROM (SELECT test_case_id, min(started_at) AS first_seen, max(started_at) AS last_seen,
               (array_agg(failure_details ORDER BY started_at DESC) FILTER (WHERE status = 'fail'))[1] AS last_failure
             FROM test_runs WHERE repo_id IN (${SEEDED_REPOS}) GROUP BY test_case_id) AS a
       WHERE tc.id = a.test_case_id`,
    );

    const flakeScores = o.scores ? (await step("flake_scores", flakeScoresSql(until))).rowCount! : 0;

    const auditLogs = (await step("audit_logs", q.auditLogs(SEEDED_REPOS))).rowCount!;

    // Autovacuum never analyzes a partitioned parent; benchmarks want real statistics.
    await step(
      "analyze",
      "ANALYZE repos, users, user_repo_roles, test_cases, ingestions, test_runs, flake_scores, audit_logs",
    );

    const { rows: stray } = await client.query(
      `SELECT count(*) AS n FROM test_runs_default WHERE repo_id IN (${SEEDED_REPOS})`,
    );
    await client.query("COMMIT");
    return {
      deletedRepos,
      repos: repos.rowCount!,
      testCases: testCases.rowCount!,
      ingestions: ingestions.rowCount!,
      testRuns: runCount,
      flakeScores,
      partitionsCreated,
      defaultPartitionRows: Number(stray[0].n),
      users: users.rowCount!,
      auditLogs,
      bulkLoaded,
      indexesDeferred: detached.map((p) => p.name),
      steps,
      totalMs: Math.round(performance.now() - started),
    };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------

function program(): Command {
  const d = DEFAULT_SEED_OPTIONS;
  return new Command("npm run db:seed --")
    .description(
      "Fills the database with seeded repos (owner seed-*), their test cases, CI runs (ingestions), test runs " +
        "and flake scores. Deterministic: the same options give the same rows.",
    )
    .option("--repos <n>", `repositories (default ${d.repos})`)
    .option("--tests <n>", `test cases per repo (default ${d.tests})`)
    .option("--runs <n>", `CI runs per repo = runs per test case (default ${d.runs})`)
    .option("--days <n>", `spread the CI runs over the last N days (default ${d.days})`)
    .option("--until <iso>", "end of the history (default: the start of the current hour)")
    .option("--seed <n>", `vary the data set (default ${d.seed})`)
    .option("--reset", "delete the previously seeded repos (and, by cascade, their rows) first")
    .option("--no-reset", "keep them (the default)")
    .option("--scores", "compute flake_scores (the default)")
    .option("--no-scores", "skip computing flake_scores")
    .addHelpText(
      "after",
      `
Works on the embedded dev database, or on DATABASE_URL when it is set (run npm run db:migrate first).
Example: npm run db:seed -- --repos 10 --tests 1000 --runs 100 --reset   (1,000,000 test runs)`,
    );
}

/**
 * The options on a command line (only those given), or the exit code when there is nothing to run (help,
 * usage error). Numbers and dates are checked by `seed()` itself, with its messages.
 */
export function parseSeedArgs(argv: string[]): Partial<SeedOptions> | number {
  const parsed = parseToolArgs(program(), argv);
  if (typeof parsed === "number") return parsed;
  const values = parsed.opts<Partial<Record<"repos" | "tests" | "runs" | "days" | "seed" | "until", string>>>();
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  // Commander gives a negatable flag its default when it is absent: only what the command line set counts.
  const given = (name: "reset" | "scores") =>
    parsed.getOptionValueSource(name) === "cli" ? (parsed.getOptionValue(name) as boolean) : undefined;
  return Object.fromEntries(
    Object.entries({
      repos: number(values.repos),
      tests: number(values.tests),
      runs: number(values.runs),
      days: number(values.days),
      seed: number(values.seed),
      until: values.until === undefined ? undefined : new Date(values.until),
      reset: given("reset"),
      scores: given("scores"),
    }).filter(([, value]) => value !== undefined),
  );
}

async function main(argv: string[]): Promise<number> {
  const options = parseSeedArgs(argv);
  if (typeof options === "number") return options;
  try {
    resolveOptions(options);
  } catch (error) {
    if (!(error instanceof SeedError)) throw error;
    console.error(`error: ${error.message}`);
    return 2;
  }

  const backend = await openDatabase();
  console.log(`database: ${backend.description}`);
  try {
    const result = await seed(backend.pool, {
      ...options,
      onStep: (s) =>
        console.log(`${s.name.padEnd(34)} ${String(s.rows).padStart(10)} rows ${String(s.ms).padStart(8)} ms`),
    });
    if (result.partitionsCreated.length) console.log(`partitions created: ${result.partitionsCreated.join(", ")}`);
    if (result.defaultPartitionRows) console.warn(`warning: ${result.defaultPartitionRows} runs in test_runs_default`);
    console.log(
      `seeded ${result.repos} repos, ${result.testCases} test cases, ${result.ingestions} ingestions, ` +
        `${result.testRuns} test runs, ${result.flakeScores} flake scores in ${(result.totalMs / 1000).toFixed(1)} s`,
    );
    return 0;
  } catch (error) {
    if (error instanceof SeedError) {
      console.error(`error: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    await backend.close();
  }
}

if (isMain(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
