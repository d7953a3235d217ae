import { sql } from "drizzle-orm";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseCodeowners, replaceCodeowners } from "../../src/services/codeowners";
import { rescore } from "../../src/services/scoring/rescore";
import { createSecret } from "../../src/services/secrets";
import { api, person, repoWithPeople } from "./api-support";
import { keyring, payload, serviceContext, testDb, upload } from "./ingestion-support";

/**
 * The flaky-test list and one test's score (spec/api.md, "Flaky tests"), through the real Worker on a real
 * database. Scores are seeded two ways: by uploads and the scoring model (`rescore`), and by writing
 * flake_scores rows directly where a test needs exact classes, scores and probabilities.
 */

/** The clock of this file: uploads are dated before it, scores are computed as of it. */
const NOW = new Date(Math.floor(Date.now() / 60_000) * 60_000);
const hoursAgo = (hours: number) => new Date(NOW.getTime() - hours * 3_600_000).toISOString();

type Item = {
  testId: string;
  path: string;
  name: string;
  suite: string | null;
  framework: string;
  class: string;
  score: number;
  failureProbability: { estimate: number | null; lower: number | null; upper: number | null };
  evidence: { runs: number; contradictions: number; retryRecoveries: number };
  owners: string[];
  firstFlakyCommit: string | null;
  lastRunAt: string | null;
};
type Page = { items: Item[]; nextCursor: string | null };

interface TestSpec {
  path: string;
  name: string;
  /** In how many of the four uploads (the newest first) it runs. */
  uploads: number;
}

/**
 * A repository with people, a secret and four uploads (one per commit, 1, 2, 3 and 4 hours ago) of these
 * tests; each test runs in the newest `uploads` of them. Returns the test ids by name.
 */
async function seededRepo(tests: TestSpec[]) {
  const people = await repoWithPeople();
  const { plaintext } = await createSecret(serviceContext(), await keyring(), { repoId: people.repoId });
  for (let age = 4; age >= 1; age--) {
    const results = tests
      .filter((t) => t.uploads >= age)
      .map((t) => ({ path: t.path, name: t.name, status: "pass", startedAt: hoursAgo(age), durationMs: 5 }));
    if (results.length === 0) continue;
    const res = await upload(payload(people.repoId, { commit_sha: String(age).repeat(40) }, results), {
      repoId: people.repoId,
      secret: plaintext,
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }
  const rows = await testDb().execute<{ id: string; name: string }>(
    sql`select id, name from test_cases where repo_id = ${people.repoId}`,
  );
  const ids = Object.fromEntries(rows.rows.map((r) => [r.name, r.id]));
  return { ...people, secret: plaintext, ids };
}

interface ScoreSpec {
  class: "flaky" | "highly_flaky" | "broken" | "suspect" | "stable";
  score: number;
  estimate: number;
  contradictions?: number;
  retryRecoveries?: number;
  firstFlakyCommit?: string | null;
  runs?: number;
}

/** Writes a test's flake_scores row as the model would, with the values a test needs. */
async function setScore(repoId: string, testId: string, spec: ScoreSpec) {
  const explanation = {
    model: "test",
    asOf: NOW.toISOString(),
    reason: `seeded ${spec.class}`,
    evidence: {
      runsConsidered: spec.runs ?? 4,
      contradictions: spec.contradictions ?? 0,
      retryRecoveries: spec.retryRecoveries ?? 0,
      firstFlakyCommit: spec.firstFlakyCommit ?? null,
    },
    failureProbability: { estimate: spec.estimate, lower: spec.estimate / 2, upper: Math.min(1, spec.estimate * 2) },
  };
  await testDb().execute(sql`
    insert into flake_scores (test_case_id, repo_id, window_n, runs_considered, pass_rate, volatility, recency_fail,
      clustering, score, class, ml_prediction_data, updated_at)
    values (${testId}, ${repoId}, 50, ${spec.runs ?? 4}, 0.9, 0.2, 0.5, 0.1, ${spec.score}, ${spec.class},
      ${JSON.stringify(explanation)}::jsonb, ${NOW.toISOString()})
    on conflict (test_case_id) do update set window_n = excluded.window_n, runs_considered = excluded.runs_considered,
      pass_rate = excluded.pass_rate,
      volatility = excluded.volatility, recency_fail = excluded.recency_fail, clustering = excluded.clustering,
      first_flaky_at = null, last_flaky_at = null, score = excluded.score,
      class = excluded.class, ml_prediction_data = excluded.ml_prediction_data, updated_at = excluded.updated_at`);
}

/** Stores a CODEOWNERS file with the codeowners service (the parser and rows PUT …/codeowners uses). */
async function setOwners(repoId: string, actorId: string, text: string) {
  const parsed = parseCodeowners(text);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  await replaceCodeowners(serviceContext(), { actorId, repoId, rules: parsed.rules });
}

async function list(repoId: string, token: string, query = ""): Promise<Page> {
  const res = await api("GET", `/api/repos/${repoId}/flaky-tests${query}`, { token });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as Page;
}

async function expectInvalid(res: Response, path: string) {
  const text = await res.text();
  expect(res.status, text).toBe(400);
  const body = JSON.parse(text) as { error: { code: string; requestId: string; details: { path: string }[] } };
  expect(body.error.code).toBe("validation_failed");
  expect(body.error.requestId).toEqual(expect.any(String));
  expect(body.error.details.map((d) => d.path.split(".")[0])).toContain(path);
}

describe("GET /api/repos/:repoId/flaky-tests", () => {
  let repo: Awaited<ReturnType<typeof seededRepo>>;

  beforeAll(async () => {
    repo = await seededRepo([
      { path: "src/a_b/one.test.ts", name: "often", uploads: 4 },
      { path: "src/aXb/two.test.ts", name: "rare", uploads: 1 },
      { path: "src/a_b/three.test.ts", name: "highly", uploads: 2 },
      { path: "src/c/four.test.ts", name: "broken", uploads: 3 },
      { path: "src/c/five.test.ts", name: "suspect", uploads: 2 },
      { path: "src/c/six.test.ts", name: "stable", uploads: 4 },
      { path: "src/d/seven.test.ts", name: "tie-a", uploads: 1 },
      { path: "src/d/eight.test.ts", name: "tie-b", uploads: 1 },
      { path: "src/e/nine.test.ts", name: "unscored", uploads: 1 },
    ]);
    const { repoId, ids } = repo;
    await setScore(repoId, ids.often, {
      class: "flaky",
      score: 40,
      estimate: 0.2,
      contradictions: 2,
      retryRecoveries: 1,
      firstFlakyCommit: "3".repeat(40),
    });
    await setScore(repoId, ids.rare, { class: "flaky", score: 55, estimate: 0.5, contradictions: 1 });
    await setScore(repoId, ids.highly, { class: "highly_flaky", score: 80, estimate: 0.3, retryRecoveries: 3 });
    await setScore(repoId, ids.broken, { class: "broken", score: 90, estimate: 0.99 });
    await setScore(repoId, ids.suspect, { class: "suspect", score: 20, estimate: 0.05 });
    await setScore(repoId, ids.stable, { class: "stable", score: 0, estimate: 0.001 });
    await setScore(repoId, ids["tie-a"], { class: "flaky", score: 30, estimate: 0.1 });
    await setScore(repoId, ids["tie-b"], { class: "flaky", score: 30, estimate: 0.1 });
    await testDb().execute(sql`delete from flake_scores where test_case_id = ${ids.unscored}`);
    await setOwners(
      repoId,
      repo.admin.id,
      // The last matching line wins: the suspect test's line names nobody.
      "/src/a_b/ @ada @org/ab\n/src/c/ @org/c\n/src/c/five.test.ts\n",
    );
  });

  const byScoreThenId = <T extends { score: number; testId: string }>(items: T[]) =>
    [...items].sort((a, b) => b.score - a.score || (a.testId < b.testId ? -1 : 1));

  it("lists flaky and highly flaky tests by score, then id, in the spec's item shape", async () => {
    const page = await list(repo.repoId, repo.reader.token);
    expect(page.nextCursor).toBeNull();
    expect(page.items.map((i) => i.name)).toEqual(byScoreThenId(page.items).map((i) => i.name));
    expect(page.items.map((i) => i.name).sort()).toEqual(["highly", "often", "rare", "tie-a", "tie-b"]);
    expect(page.items[0].name).toBe("highly");
    const often = page.items.find((i) => i.name === "often") as Item;
    expect(Object.keys(often).sort()).toEqual(
      [
        "testId",
        "path",
        "name",
        "suite",
        "framework",
        "class",
        "score",
        "failureProbability",
        "evidence",
        "owners",
        "firstFlakyCommit",
        "lastRunAt",
      ].sort(),
    );
    expect(often).toEqual({
      testId: repo.ids.often,
      path: "src/a_b/one.test.ts",
      name: "often",
      suite: null,
      framework: "vitest",
      class: "flaky",
      score: 40,
      failureProbability: { estimate: 0.2, lower: 0.1, upper: 0.4 },
      evidence: { runs: 4, contradictions: 2, retryRecoveries: 1 },
      owners: ["@ada", "@org/ab"],
      firstFlakyCommit: "3".repeat(40),
      lastRunAt: hoursAgo(1),
    });
    // The item agrees with the database.
    const [row] = (
      await testDb().execute<{ score: number; class: string; last: string }>(sql`
        select fs.score, fs.class, (select max(started_at) from test_runs where test_case_id = fs.test_case_id) as last
        from flake_scores fs where fs.test_case_id = ${repo.ids.often}`)
    ).rows;
    expect([row.score, row.class, new Date(row.last).toISOString()]).toEqual([
      often.score,
      often.class,
      often.lastRunAt,
    ]);
  });

  it("filters by class", async () => {
    const names = async (query: string) => (await list(repo.repoId, repo.admin.token, query)).items.map((i) => i.name);
    expect(await names("?class=broken,suspect")).toEqual(["broken", "suspect"]);
    // A test without a score yet is stable, score 0, as its own score says.
    const stable = await list(repo.repoId, repo.admin.token, "?class=stable");
    expect(stable.items.map((i) => i.name).sort()).toEqual(["stable", "unscored"]);
    expect(stable.items.find((i) => i.name === "unscored")).toMatchObject({
      testId: repo.ids.unscored,
      class: "stable",
      score: 0,
      failureProbability: { estimate: null, lower: null, upper: null },
      evidence: { runs: 0, contradictions: 0, retryRecoveries: 0 },
      firstFlakyCommit: null,
      lastRunAt: hoursAgo(1),
    });
    expect(await names("?class=highly_flaky")).toEqual(["highly"]);
    expect((await names("?class=flaky,highly_flaky,broken,suspect,stable")).length).toBe(9);
    expect(await names("?class=broken,broken")).toEqual(["broken"]);
  });

  it("answers 400 for an unknown or empty class, naming the parameter", async () => {
    for (const value of ["flakey", "", "flaky,", "FLAKY", "flaky;broken", "flaky,highly-flaky"]) {
      await expectInvalid(
        await api("GET", `/api/repos/${repo.repoId}/flaky-tests?class=${encodeURIComponent(value)}`, {
          token: repo.reader.token,
        }),
        "class",
      );
    }
  });

  it("takes path_prefix literally: LIKE wildcards match only themselves", async () => {
    const names = async (prefix: string) =>
      (
        await list(
          repo.repoId,
          repo.reader.token,
          `?class=flaky,highly_flaky,broken,suspect,stable&path_prefix=${encodeURIComponent(prefix)}`,
        )
      ).items
        .map((i) => i.name)
        .sort();
    expect(await names("src/a_b/")).toEqual(["highly", "often"]);
    expect(await names("src/a")).toEqual(["highly", "often", "rare"]);
    expect(await names("src/a%")).toEqual([]);
    expect(await names("src/_")).toEqual([]);
    expect(await names("src\\")).toEqual([]);
    expect(await names("src/c/f")).toEqual(["broken", "suspect"]);
  });

  it("answers each test's owners from CODEOWNERS and filters by owner", async () => {
    const all = await list(repo.repoId, repo.reader.token, "?class=flaky,highly_flaky,broken,suspect,stable");
    expect(Object.fromEntries(all.items.map((i) => [i.name, i.owners]))).toEqual({
      often: ["@ada", "@org/ab"],
      highly: ["@ada", "@org/ab"],
      rare: [],
      broken: ["@org/c"],
      suspect: [],
      stable: ["@org/c"],
      "tie-a": [],
      "tie-b": [],
      unscored: [],
    });
    const names = async (query: string) => (await list(repo.repoId, repo.reader.token, query)).items.map((i) => i.name);
    expect(await names("?owner=%40org%2Fab")).toEqual(["highly", "often"]);
    expect(await names("?owner=%40ada&sort=impact")).toEqual(["often", "highly"]);
    expect(await names("?owner=%40org%2Fc&class=broken,suspect,stable")).toEqual(["broken", "stable"]);
    expect(await names("?owner=%40org%2Fc")).toEqual([]);
    expect(await names("?owner=%40ORG%2FAB")).toEqual([]);
    expect(await names("?owner=%40org%2Fab&path_prefix=src%2Fa_b%2Fthree")).toEqual(["highly"]);
  });

  it("sorts by impact: the failure probability × runs per day over the week before the score", async () => {
    const page = await list(repo.repoId, repo.reader.token, "?sort=impact");
    // often: 0.2 × 4/7; highly: 0.3 × 2/7; rare: 0.5 × 1/7; tie-a and tie-b: 0.1 × 1/7 (then by id).
    const ties = [repo.ids["tie-a"], repo.ids["tie-b"]].sort();
    expect(page.items.map((i) => i.testId)).toEqual([repo.ids.often, repo.ids.highly, repo.ids.rare, ...ties]);
    const byScore = await list(repo.repoId, repo.reader.token, "?sort=score");
    expect(byScore.items.map((i) => i.name).slice(0, 3)).toEqual(["highly", "rare", "often"]);
  });

  it.each(["score", "impact"])("pages by sort=%s without repeating or skipping a test", async (sort) => {
    const all = await list(
      repo.repoId,
      repo.reader.token,
      `?sort=${sort}&class=flaky,highly_flaky,broken,suspect,stable`,
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?sort=${sort}&class=flaky,highly_flaky,broken,suspect,stable&limit=3${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await list(repo.repoId, repo.reader.token, query);
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((i) => i.testId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(all.items.map((i) => i.testId));
    expect(new Set(seen).size).toBe(9);
    expect(pages).toBe(3);
  });

  it("refuses a cursor made for the other sort, or tampered with", async () => {
    const first = await list(repo.repoId, repo.reader.token, "?limit=1");
    expect(first.nextCursor).not.toBeNull();
    await expectInvalid(
      await api("GET", `/api/repos/${repo.repoId}/flaky-tests?sort=impact&cursor=${first.nextCursor}`, {
        token: repo.reader.token,
      }),
      "cursor",
    );
    const forged = btoa(JSON.stringify(["score", "1e400", crypto.randomUUID()]));
    await expectInvalid(
      await api("GET", `/api/repos/${repo.repoId}/flaky-tests?cursor=${forged}`, { token: repo.reader.token }),
      "cursor",
    );
  });

  it("is 404 for a repository the caller has no role in, 401 without a token, 400 for a malformed id", async () => {
    const stranger = await person();
    const res = await api("GET", `/api/repos/${repo.repoId}/flaky-tests`, { token: stranger.token });
    expect(res.status).toBe(404);
    expect((await res.json<{ error: { code: string } }>()).error.code).toBe("not_found");
    const anonymous = await api("GET", `/api/repos/${repo.repoId}/flaky-tests`);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json<{ error: { code: string } }>()).error.code).toBe("unauthorized");
    await expectInvalid(await api("GET", "/api/repos/not-a-uuid/flaky-tests", { token: repo.reader.token }), "repoId");
  });

  it("property: any query string is a 200 or a 400 in the error envelope, never a 5xx", async () => {
    const key = fc.constantFrom("class", "owner", "path_prefix", "sort", "limit", "cursor", "x");
    const value = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.constantFrom("flaky", "stable,broken", "impact", "score", "%", "_", "\\", "0", "201", "-1", "eyJ9", "%00"),
      fc
        .array(fc.constantFrom(...["flaky", "highly_flaky", "broken", "suspect", "stable", "nope", ""]), {
          maxLength: 6,
        })
        .map((parts) => parts.join(",")),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 5 }), async (query) => {
        const search = new URLSearchParams(query).toString();
        const res = await api("GET", `/api/repos/${repo.repoId}/flaky-tests?${search}`, { token: repo.reader.token });
        const text = await res.text();
        expect([200, 400], `${search}: ${text.slice(0, 300)}`).toContain(res.status);
        if (res.status === 400) expect(JSON.parse(text).error.code).toBe("validation_failed");
      }),
      { numRuns: 150 },
    );
  });

  it("property: a class list with anything but the five classes is a 400", async () => {
    const bad = fc
      .string({ minLength: 1 })
      .filter((s) => !["flaky", "highly_flaky", "broken", "suspect", "stable"].includes(s.trim()) && !s.includes(","));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom<string>("flaky", "highly_flaky", "broken", "suspect", "stable"), { maxLength: 3 }),
        bad,
        fc.nat(),
        async (good, junk, at) => {
          const parts = [...good];
          parts.splice(at % (parts.length + 1), 0, junk);
          const res = await api(
            "GET",
            `/api/repos/${repo.repoId}/flaky-tests?class=${encodeURIComponent(parts.join(","))}`,
            { token: repo.reader.token },
          );
          await expectInvalid(res, "class");
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("GET /api/repos/:repoId/tests/:testId/score", () => {
  it("answers the score, its factor columns, the whole explanation and the recent runs", async () => {
    const repo = await seededRepo([
      { path: "src/x.test.ts", name: "scored", uploads: 4 },
      { path: "src/y.test.ts", name: "unscored", uploads: 2 },
    ]);
    await setScore(repo.repoId, repo.ids.scored, {
      class: "highly_flaky",
      score: 77,
      estimate: 0.25,
      contradictions: 3,
    });
    await testDb().execute(sql`delete from flake_scores where test_case_id = ${repo.ids.unscored}`);
    const res = await api("GET", `/api/repos/${repo.repoId}/tests/${repo.ids.scored}/score`, {
      token: repo.reader.token,
    });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text);
    const [row] = (
      await testDb().execute<{ explanation: unknown; updated_at: string }>(
        sql`select ml_prediction_data as explanation, updated_at from flake_scores where test_case_id = ${repo.ids.scored}`,
      )
    ).rows;
    expect(body).toMatchObject({
      testId: repo.ids.scored,
      path: "src/x.test.ts",
      name: "scored",
      framework: "vitest",
      scored: true,
      class: "highly_flaky",
      score: 77,
      owners: [],
      factors: { windowN: 50, runsConsidered: 4, passRate: 0.9, volatility: 0.2, recencyFail: 0.5, clustering: 0.1 },
      scoredAt: new Date(row.updated_at).toISOString(),
      firstFlakyAt: null,
    });
    expect(body.explanation).toEqual(row.explanation);
    expect(body.recentRuns.map((r: { startedAt: string }) => r.startedAt)).toEqual([1, 2, 3, 4].map(hoursAgo));
    expect(body.recentRuns[0]).toEqual({
      id: expect.any(String),
      ingestionId: expect.any(String),
      status: "pass",
      rerunCount: 0,
      commitSha: "1".repeat(40),
      branch: "main",
      durationMs: 5,
      startedAt: hoursAgo(1),
    });

    const unscored = await api("GET", `/api/repos/${repo.repoId}/tests/${repo.ids.unscored}/score`, {
      token: repo.reader.token,
    });
    expect(unscored.status).toBe(200);
    expect(await unscored.json()).toMatchObject({
      scored: false,
      class: "stable",
      score: 0,
      factors: null,
      explanation: { reason: "not scored yet: no completed upload of this test has been scored" },
      recentRuns: [
        expect.objectContaining({ startedAt: hoursAgo(1) }),
        expect.objectContaining({ startedAt: hoursAgo(2) }),
      ],
    });
  });

  it("is 404 for an unknown test or another repository's test, 400 for a malformed id", async () => {
    const repo = await seededRepo([{ path: "src/x.test.ts", name: "mine", uploads: 1 }]);
    const other = await seededRepo([{ path: "src/x.test.ts", name: "theirs", uploads: 1 }]);
    for (const testId of [crypto.randomUUID(), other.ids.theirs]) {
      const res = await api("GET", `/api/repos/${repo.repoId}/tests/${testId}/score`, { token: repo.admin.token });
      expect(res.status).toBe(404);
      expect((await res.json<{ error: { code: string; message: string } }>()).error).toMatchObject({
        code: "not_found",
        message: "Test not found.",
      });
    }
    await expectInvalid(
      await api("GET", `/api/repos/${repo.repoId}/tests/zzz/score`, { token: repo.admin.token }),
      "testId",
    );
    const stranger = await person();
    const res = await api("GET", `/api/repos/${repo.repoId}/tests/${repo.ids.mine}/score`, { token: stranger.token });
    expect(res.status).toBe(404);
  });
});

describe("scores written by the model", () => {
  it("a test recovered by retries is listed with the model's own explanation; a broken one is not", async () => {
    const people = await repoWithPeople();
    const { plaintext } = await createSecret(serviceContext(), await keyring(), { repoId: people.repoId });
    for (let age = 6; age >= 1; age--) {
      const tests = [
        ...Array.from({ length: 8 }, (_, i) => ({ path: "src/ok.test.ts", name: `ok ${i}`, status: "pass" })),
        { path: "src/retry.test.ts", name: "retried", status: "pass", rerunCount: age % 2 },
        { path: "src/broken.test.ts", name: "broken", status: "fail", failureDetails: "boom" },
      ].map((t) => ({ ...t, startedAt: hoursAgo(age), durationMs: 3 }));
      const res = await upload(payload(people.repoId, { commit_sha: String(age).repeat(40) }, tests), {
        repoId: people.repoId,
        secret: plaintext,
      });
      expect(res.status, await res.clone().text()).toBe(200);
    }
    await rescore(
      serviceContext(() => NOW),
      people.repoId,
      "all",
      NOW,
    );
    const rows = await testDb().execute<{ name: string; class: string; score: number; data: { reason: string } }>(sql`
      select tc.name, fs.class, fs.score, fs.ml_prediction_data as data from flake_scores fs
      join test_cases tc on tc.id = fs.test_case_id where fs.repo_id = ${people.repoId} order by tc.name`);
    const byName = Object.fromEntries(rows.rows.map((r) => [r.name, r]));
    expect(["flaky", "highly_flaky"]).toContain(byName.retried.class);
    expect(byName.broken.class).toBe("broken");

    const page = await list(people.repoId, people.reader.token);
    expect(page.items.map((i) => i.name)).toEqual(["retried"]);
    expect(page.items[0]).toMatchObject({
      class: byName.retried.class,
      score: byName.retried.score,
      evidence: { runs: 6, retryRecoveries: 3 },
      firstFlakyCommit: expect.stringMatching(/^[0-9a-f]{40}$/),
      lastRunAt: hoursAgo(1),
    });
    const broken = await list(people.repoId, people.reader.token, "?class=broken");
    expect(broken.items.map((i) => i.name)).toEqual(["broken"]);
  });
});
