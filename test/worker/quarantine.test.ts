import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ifNoneMatchHits } from "../../src/lib/etag";
import { parseCodeowners, replaceCodeowners } from "../../src/services/codeowners";
import { createSecret, revokeSecret } from "../../src/services/secrets";
import { api, person, repoWithPeople } from "./api-support";
import { keyring, payload, serviceContext, signV1, signV2, testDb, upload } from "./ingestion-support";

/**
 * GET /api/repos/:repoId/quarantine, the list CI fetches to skip or tolerate known-flaky tests: its body,
 * its ETag and 304s, and its two ways in — a personal token, or the repository's signature over the empty
 * body (Standard Webhooks, checked by the uploads' own code).
 */

type Quarantine = {
  repoId: string;
  tests: {
    testId: string;
    path: string;
    name: string;
    suite: string | null;
    framework: string;
    class: string;
    score: number;
    reason: string;
    owners: string[];
  }[];
};

const TESTS = [
  { path: "src/b.test.ts", name: "zeta", cls: "flaky", score: 30 },
  { path: "src/b.test.ts", name: "alpha", cls: "highly_flaky", score: 85 },
  { path: "src/a.test.ts", name: "m", cls: "flaky", score: 10 },
  { path: "src/B.test.ts", name: "upper", cls: "flaky", score: 12 },
  { path: "src/c.test.ts", name: "broken", cls: "broken", score: 95 },
  { path: "src/c.test.ts", name: "suspect", cls: "suspect", score: 25 },
  { path: "src/c.test.ts", name: "stable", cls: "stable", score: 0 },
] as const;

/** A repository with people and a secret, the tests above uploaded once, and their scores set. */
async function quarantinedRepo() {
  const people = await repoWithPeople();
  const { plaintext, secret } = await createSecret(serviceContext(), await keyring(), { repoId: people.repoId });
  const startedAt = new Date().toISOString();
  const results = TESTS.map((t) => ({ path: t.path, name: t.name, status: "pass", startedAt, durationMs: 1 }));
  const res = await upload(payload(people.repoId, {}, results), { repoId: people.repoId, secret: plaintext });
  expect(res.status, await res.clone().text()).toBe(200);
  const rows = await testDb().execute<{ id: string; name: string }>(
    sql`select id, name from test_cases where repo_id = ${people.repoId}`,
  );
  const ids = Object.fromEntries(rows.rows.map((r) => [r.name, r.id]));
  for (const t of TESTS) await setClass(ids[t.name], t.cls, t.score);
  const codeowners = parseCodeowners("/src/b.test.ts @org/b @bob\n");
  if (!codeowners.ok) throw new Error("CODEOWNERS refused");
  await replaceCodeowners(serviceContext(), {
    actorId: people.admin.id,
    repoId: people.repoId,
    rules: codeowners.rules,
  });
  return { ...people, secret: plaintext, secretId: secret.id, ids };
}

/** The test's flake_scores row, as the model would write it, with this class, score and reason. */
async function setClass(testId: string, cls: string, score: number) {
  await testDb().execute(sql`
    insert into flake_scores (test_case_id, repo_id, runs_considered, pass_rate, volatility, recency_fail, clustering,
      score, class, ml_prediction_data)
    select id, repo_id, 1, 1, 0, 0, 0, ${score}, ${cls}::flake_class,
      jsonb_build_object('reason', ${`seeded ${cls} ${score}`}::text)
    from test_cases where id = ${testId}
    on conflict (test_case_id) do update set class = excluded.class, score = excluded.score,
      ml_prediction_data = excluded.ml_prediction_data`);
}

/** The headers of a signed read: Standard Webhooks over the empty body. */
async function signedHeaders(secret: string, options: { timestamp?: number; id?: string } = {}) {
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signV2("", secret, id, timestamp),
  };
}

const path = (repoId: string) => `/api/repos/${repoId}/quarantine`;

async function base64urlSha256(text: string) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return btoa(String.fromCharCode(...digest))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

async function expectUnauthorized(res: Response) {
  const text = await res.text();
  expect(res.status, text).toBe(401);
  const body = JSON.parse(text) as { error: { code: string; message: string; requestId: string } };
  expect(body.error).toEqual({ code: "unauthorized", message: expect.any(String), requestId: expect.any(String) });
  expect(res.headers.get("etag")).toBeNull();
}

/** Failed signature checks counted for the repository, by reason. */
async function tallies(repoId: string): Promise<Record<string, number>> {
  const result = await testDb().execute<{ reason: string; failures: number }>(sql`
    select reason, sum(failures)::int as failures from auth_failure_tallies where subject_id = ${repoId}
    group by reason`);
  return Object.fromEntries(result.rows.map((r) => [r.reason, r.failures]));
}

describe("GET /api/repos/:repoId/quarantine", () => {
  it("lists flaky and highly flaky tests only, by path then name (byte order), with a strong ETag", async () => {
    const repo = await quarantinedRepo();
    const res = await api("GET", path(repo.repoId), { token: repo.reader.token });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("private, no-cache");
    expect(res.headers.get("etag")).toBe(`"${await base64urlSha256(text)}"`);
    expect(res.headers.get("anchorpipe-quarantine-truncated")).toBeNull();
    const body = JSON.parse(text) as Quarantine;
    const expected = [
      ["src/B.test.ts", "upper", "flaky", 12],
      ["src/a.test.ts", "m", "flaky", 10],
      ["src/b.test.ts", "alpha", "highly_flaky", 85],
      ["src/b.test.ts", "zeta", "flaky", 30],
    ] as const;
    expect(body).toEqual({
      repoId: repo.repoId,
      tests: expected.map(([p, name, cls, score]) => ({
        testId: repo.ids[name],
        path: p,
        name,
        suite: null,
        framework: "vitest",
        class: cls,
        score,
        reason: `seeded ${cls} ${score}`,
        owners: p === "src/b.test.ts" ? ["@bob", "@org/b"] : [],
      })),
    });
    expect(text).not.toMatch(/\d{4}-\d{2}-\d{2}T/);
    // The same list from the database.
    const rows = await testDb().execute<{ id: string }>(sql`
      select test_case_id as id from flake_scores where repo_id = ${repo.repoId} and class in ('flaky', 'highly_flaky')`);
    expect(body.tests.map((t) => t.testId).sort()).toEqual(rows.rows.map((r) => r.id).sort());
  });

  it("answers 304 for the current tag (also *, lists and W/), 200 for a stale one, and a new tag when the list changes", async () => {
    const repo = await quarantinedRepo();
    const first = await api("GET", path(repo.repoId), { token: repo.reader.token });
    const etag = first.headers.get("etag") as string;
    const firstBody = await first.text();
    for (const ifNoneMatch of [etag, "*", `"stale", ${etag}`, `W/${etag}`, ` "a" ,, W/${etag} `]) {
      const res = await api("GET", path(repo.repoId), {
        token: repo.reader.token,
        headers: { "If-None-Match": ifNoneMatch },
      });
      expect(res.status, ifNoneMatch).toBe(304);
      expect(res.headers.get("etag")).toBe(etag);
      expect(res.headers.get("cache-control")).toBe("private, no-cache");
      expect(await res.text()).toBe("");
    }
    for (const ifNoneMatch of ['"stale"', `${etag.slice(0, -2)}"`, etag.slice(1, -1), `${etag}x`, "W/"]) {
      const res = await api("GET", path(repo.repoId), {
        token: repo.reader.token,
        headers: { "If-None-Match": ifNoneMatch },
      });
      expect(res.status, ifNoneMatch).toBe(200);
      expect(await res.text()).toBe(firstBody);
    }
    // A test becomes flaky: a new body and tag; the old tag is stale.
    await setClass(repo.ids.suspect, "flaky", 40);
    const changed = await api("GET", path(repo.repoId), {
      token: repo.reader.token,
      headers: { "If-None-Match": etag },
    });
    expect(changed.status).toBe(200);
    const changedEtag = changed.headers.get("etag");
    expect(changedEtag).not.toBe(etag);
    const body = (await changed.json()) as Quarantine;
    expect(body.tests.map((t) => t.name)).toEqual(["upper", "m", "alpha", "zeta", "suspect"]);
    // Broken is never quarantined.
    await setClass(repo.ids.alpha, "broken", 99);
    const fewer = (await (await api("GET", path(repo.repoId), { token: repo.reader.token })).json()) as Quarantine;
    expect(fewer.tests.map((t) => t.name)).toEqual(["upper", "m", "zeta", "suspect"]);
  });

  it("is empty for a repository without flaky tests, and 404 for a repository the caller has no role in", async () => {
    const { repoId, reader } = await repoWithPeople();
    const res = await api("GET", path(repoId), { token: reader.token });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ repoId, tests: [] });
    const stranger = await person();
    const hidden = await api("GET", path(repoId), { token: stranger.token });
    expect(hidden.status).toBe(404);
    expect((await hidden.json<{ error: { code: string } }>()).error.code).toBe("not_found");
  });
});

describe("the quarantine list moves with the upload that caused it", () => {
  it("a test that passes and fails on one commit is in the list once that upload is answered", async () => {
    const { repoId } = await repoWithPeople();
    const { plaintext } = await createSecret(serviceContext(), await keyring(), { repoId });
    const results = (status: "pass" | "fail") => [
      ...["a", "b", "c", "d", "e"].map((name) => ({ path: "src/ok.test.ts", name, status: "pass" as const })),
      { path: "src/flip.test.ts", name: "flips", status, ...(status === "fail" ? { failureDetails: "timeout" } : {}) },
    ];
    const send = async (status: "pass" | "fail") => {
      const tests = results(status).map((t) => ({ ...t, startedAt: new Date().toISOString(), durationMs: 2 }));
      const res = await upload(payload(repoId, { commit_sha: "f".repeat(40) }, tests), { repoId, secret: plaintext });
      expect(res.status, await res.clone().text()).toBe(200);
    };
    const fetchList = async (etag?: string) =>
      api("GET", path(repoId), {
        headers: { ...(await signedHeaders(plaintext)), ...(etag ? { "If-None-Match": etag } : {}) },
      });

    await send("pass");
    const before = await fetchList();
    expect(await before.json()).toEqual({ repoId, tests: [] });
    const etag = before.headers.get("etag") as string;
    expect((await fetchList(etag)).status).toBe(304);

    await send("fail");
    const after = await fetchList(etag);
    expect(after.status).toBe(200);
    expect(after.headers.get("etag")).not.toBe(etag);
    const body = (await after.json()) as Quarantine;
    expect(body.tests.map((t) => [t.path, t.name])).toEqual([["src/flip.test.ts", "flips"]]);
    const [row] = (
      await testDb().execute<{ class: string; score: number; reason: string }>(sql`
        select fs.class, fs.score, fs.ml_prediction_data->>'reason' as reason from flake_scores fs
        join test_cases tc on tc.id = fs.test_case_id where tc.repo_id = ${repoId} and tc.name = 'flips'`)
    ).rows;
    expect(body.tests[0]).toMatchObject({ class: row.class, score: row.score, reason: row.reason });
    expect(["flaky", "highly_flaky"]).toContain(row.class);
  });
});

describe("the quarantine list's cap", () => {
  it("keeps the 5,000 highest scores, still by path and name, and says it was truncated", async () => {
    const { repoId, reader } = await repoWithPeople();
    // 5,001 flaky tests; the one at path 2500 has the lowest score and is the one left out.
    await testDb().execute(sql`
      insert into test_cases (repo_id, path, name, framework)
      select ${repoId}, 'src/t' || lpad(n::text, 5, '0') || '.test.ts', 'case', 'vitest'
      from generate_series(1, 5001) n`);
    await testDb().execute(sql`
      insert into flake_scores (test_case_id, repo_id, runs_considered, pass_rate, volatility, recency_fail,
        clustering, score, class, ml_prediction_data)
      select id, repo_id, 10, 0.9, 0.1, 0.1, 0, case when path = 'src/t02500.test.ts' then 1 else 50 end, 'flaky',
        '{"reason":"seeded"}'::jsonb
      from test_cases where repo_id = ${repoId}`);
    const res = await api("GET", path(repoId), { token: reader.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("anchorpipe-quarantine-truncated")).toBe("true");
    const body = (await res.json()) as Quarantine;
    expect(body.tests).toHaveLength(5000);
    const paths = body.tests.map((t) => t.path);
    expect(paths).toEqual([...paths].sort());
    expect(paths).not.toContain("src/t02500.test.ts");
    expect(paths[0]).toBe("src/t00001.test.ts");
    expect(paths.at(-1)).toBe("src/t05001.test.ts");
  });
});

describe("the quarantine list with the repository's signature", () => {
  it("accepts a Standard Webhooks signature over the empty body, with or without Authorization naming the repo", async () => {
    const repo = await quarantinedRepo();
    const byToken = await api("GET", path(repo.repoId), { token: repo.reader.token });
    const expected = await byToken.text();
    const signed = await api("GET", path(repo.repoId), { headers: await signedHeaders(repo.secret) });
    expect(signed.status).toBe(200);
    expect(await signed.text()).toBe(expected);
    expect(signed.headers.get("etag")).toBe(byToken.headers.get("etag"));
    const named = await api("GET", path(repo.repoId.toUpperCase()), {
      headers: { ...(await signedHeaders(repo.secret)), Authorization: `Bearer ${repo.repoId}` },
    });
    expect(named.status).toBe(200);
    const notModified = await api("GET", path(repo.repoId), {
      headers: { ...(await signedHeaders(repo.secret)), "If-None-Match": byToken.headers.get("etag") as string },
    });
    expect(notModified.status).toBe(304);
    expect(await tallies(repo.repoId)).toEqual({});
  });

  it("refuses bit-flipped, expired, future, other repositories' and revoked signatures with the same 401, counted", async () => {
    const repo = await quarantinedRepo();
    const other = await quarantinedRepo();
    const now = Math.floor(Date.now() / 1000);

    const good = await signedHeaders(repo.secret);
    const mac = Uint8Array.from(atob(good["webhook-signature"].slice(3)), (ch) => ch.charCodeAt(0));
    for (const bit of [0, 7, 100, 255]) {
      const flipped = Uint8Array.from(mac);
      flipped[bit >> 3] ^= 1 << (bit & 7);
      const headers = { ...good, "webhook-signature": `v1,${btoa(String.fromCharCode(...flipped))}` };
      await expectUnauthorized(await api("GET", path(repo.repoId), { headers }));
    }
    await expectUnauthorized(
      await api("GET", path(repo.repoId), { headers: await signedHeaders(repo.secret, { timestamp: now - 301 }) }),
    );
    await expectUnauthorized(
      await api("GET", path(repo.repoId), { headers: await signedHeaders(repo.secret, { timestamp: now + 3600 }) }),
    );
    // Another repository's secret, on this repository's path; and this repository's on the other's path.
    await expectUnauthorized(await api("GET", path(repo.repoId), { headers: await signedHeaders(other.secret) }));
    await expectUnauthorized(
      await api("GET", path(repo.repoId), {
        headers: { ...(await signedHeaders(other.secret)), Authorization: `Bearer ${other.repoId}` },
      }),
    );
    // Authorization naming another repository than the path.
    await expectUnauthorized(
      await api("GET", path(repo.repoId), {
        headers: { ...(await signedHeaders(repo.secret)), Authorization: `Bearer ${other.repoId}` },
      }),
    );
    // Signed over a body that was not sent.
    const id = `msg_${crypto.randomUUID()}`;
    await expectUnauthorized(
      await api("GET", path(repo.repoId), {
        headers: {
          "webhook-id": id,
          "webhook-timestamp": String(now),
          "webhook-signature": await signV2("{}", repo.secret, id, now),
        },
      }),
    );
    // v1 (anchorpipe's X-FR-Sig) is never enough for a read: its signature of an empty body never changes.
    await expectUnauthorized(
      await api("GET", path(repo.repoId), {
        headers: { "X-FR-Sig": await signV1("", repo.secret), Authorization: `Bearer ${repo.repoId}` },
      }),
    );
    await expectUnauthorized(
      await api("GET", path(repo.repoId), {
        headers: { "webhook-signature": "v1,AAAA", "X-FR-Sig": await signV1("", repo.secret) },
      }),
    );
    const counted = await tallies(repo.repoId);
    // Four flipped bits, another repository's secret, a body that was not sent; a stale and a future
    // timestamp; v2 headers without id and timestamp. (Authorization naming another repository claims no
    // repository at all, and X-FR-Sig alone is a request without a token: counted elsewhere.)
    expect(counted).toEqual({ signature_mismatch: 6, timestamp_outside_window: 2, missing_headers: 1 });
    const audit = await testDb().execute<{ description: string }>(sql`
      select description from audit_logs where action = 'hmac_auth_failure' and subject_id = ${repo.repoId}`);
    expect(audit.rows.map((r) => r.description)).toContain("signed read rejected");

    // A revoked secret stops working at once.
    const stillGood = await api("GET", path(repo.repoId), { headers: await signedHeaders(repo.secret) });
    expect(stillGood.status).toBe(200);
    await revokeSecret(serviceContext(), { repoId: repo.repoId, secretId: repo.secretId });
    await expectUnauthorized(await api("GET", path(repo.repoId), { headers: await signedHeaders(repo.secret) }));
  });

  it("a signature opens only the quarantine list, not other reads", async () => {
    const repo = await quarantinedRepo();
    await expectUnauthorized(
      await api("GET", `/api/repos/${repo.repoId}/flaky-tests`, { headers: await signedHeaders(repo.secret) }),
    );
    await expectUnauthorized(
      await api("GET", `/api/repos/${repo.repoId}/tests`, { headers: await signedHeaders(repo.secret) }),
    );
  });

  it("property: random signature headers are a 401 in the envelope, never a 5xx", async () => {
    const repo = await quarantinedRepo();
    const now = Math.floor(Date.now() / 1000);
    const header = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("", "v1,", "v1,AAAA", " "));
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            "webhook-id": fc.oneof(header, fc.uuid()),
            "webhook-timestamp": fc.oneof(header, fc.integer({ min: now - 1000, max: now + 1000 }).map(String)),
            "webhook-signature": header,
            Authorization: fc.oneof(header, fc.constant(`Bearer ${repo.repoId}`)),
          },
          { requiredKeys: ["webhook-signature"] },
        ),
        async (headers) => {
          const clean = Object.fromEntries(
            Object.entries(headers).filter(([, v]) => /^[\t\x20-\x7e]*$/.test(v as string)),
          ) as Record<string, string>;
          fc.pre("webhook-signature" in clean);
          const res = await api("GET", path(repo.repoId), { headers: clean });
          const text = await res.text();
          expect(res.status, text).toBe(401);
          expect(JSON.parse(text).error.code).toBe("unauthorized");
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("If-None-Match (RFC 9110 §13.1.2)", () => {
  const tag = '"abc-_DEF"';
  it.each([
    [tag, true],
    ["*", true],
    [` * `, true],
    [`W/${tag}`, true],
    [`"x", ${tag}`, true],
    [`"x",W/${tag}`, true],
    [`, ,${tag}`, true],
    ['"abc-_def"', false],
    ['"x"', false],
    ["abc-_DEF", false],
    [`${tag} junk`, false],
    ["", false],
    [`w/${tag}`, false],
  ])("%s → %s", (header, hits) => {
    expect(ifNoneMatchHits(header, tag)).toBe(hits);
  });

  it("never throws on any header", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (header) => {
        expect(typeof ifNoneMatchHits(header, tag)).toBe("boolean");
      }),
    );
  });
});
