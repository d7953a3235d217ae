import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { recomputeRepository } from "../../src/services/scoring/rescore";
import { createSecret } from "../../src/services/secrets";
import { api, type Person, repoWithPeople } from "./api-support";
import { keyring, serviceContext, testDb, upload } from "./ingestion-support";

/**
 * Scores, notifications and the quarantine list move with the upload that caused them: no job, no second
 * call. Every upload here goes through the real Worker; the tests then read what a user would: the
 * response, flake_scores, notifications and GET /api/notifications.
 */

type Status = "pass" | "fail";
const HOUR = 3_600_000;

/** A repository with people and a signing secret, and an uploader whose results march on an hour a run. */
async function history() {
  const people = await repoWithPeople();
  const { plaintext } = await createSecret(serviceContext(), await keyring(), { repoId: people.repoId });
  const repo = { repoId: people.repoId, secret: plaintext };
  const start = Date.now() - 20 * 24 * HOUR;
  let runs = 0;
  let lastAsOf = new Date(start);
  const send = async (commit: string, statuses: Record<string, Status>) => {
    runs += 1;
    lastAsOf = new Date(start + runs * HOUR);
    const tests = Object.entries(statuses).map(([name, status]) => ({
      path: name.startsWith("owned") ? `src/owned/${name}.test.ts` : `src/other/${name}.test.ts`,
      name,
      status,
      startedAt: lastAsOf.toISOString(),
      durationMs: 5,
      ...(status === "fail" ? { failureDetails: `AssertionError in ${name}` } : {}),
    }));
    last = {
      repo_id: repo.repoId,
      commit_sha: commit.repeat(40).slice(0, 40),
      run_id: `run-${runs}`,
      framework: "vitest",
      tests,
    };
    lastId = `msg_${crypto.randomUUID()}`;
    return (await post(last, lastId)).summary;
  };
  let last: unknown;
  let lastId = "";
  const post = async (body: unknown, webhookId: string) => {
    const res = await upload(body, { ...repo, webhookId });
    expect(res.status, await res.clone().text()).toBe(200);
    return res.json<{ summary: { flaky_candidates: number }; isDuplicate: boolean }>();
  };
  /** The last upload once more, as a CI retry sends it (the same webhook-id: the same idempotency key). */
  const again = () => post(last, lastId);
  return { ...people, send, again, asOf: () => lastAsOf };
}

async function classes(repoId: string): Promise<Record<string, string>> {
  const result = await testDb().execute<{ name: string; class: string }>(sql`
    select tc.name, fs.class from flake_scores fs join test_cases tc on tc.id = fs.test_case_id
    where fs.repo_id = ${repoId}`);
  return Object.fromEntries(result.rows.map((r) => [r.name, r.class]));
}

async function notifications(repoId: string) {
  const result = await testDb().execute<{
    type: string;
    user_id: string | null;
    severity: string;
    transition: string;
    name: string;
    owners: string[];
  }>(sql`
    select type, user_id, severity, metadata->>'transition' as transition, metadata->>'name' as name,
      metadata->'owners' as owners
    from notifications where repo_id = ${repoId} order by created_at, name, user_id nulls first`);
  return result.rows;
}

async function ownedBy(repoId: string, owners: string[]) {
  await testDb().execute(sql`
    insert into owner_maps (repo_id, pattern, owner, source, line, path_regex)
    select ${repoId}::uuid, '/src/owned/', o, 'CODEOWNERS', 1, '^src/owned/.*$'
    from unnest(string_to_array(${owners.join(",")}, ',')) as o`);
}

const listFor = async (who: Person) => {
  const res = await api("GET", "/api/notifications", { token: who.token });
  expect(res.status).toBe(200);
  return (await res.json<{ items: { type: string; title: string }[] }>()).items;
};

async function quarantine(repoId: string, who: Person) {
  const res = await api("GET", `/api/repos/${repoId}/quarantine`, { token: who.token });
  expect(res.status).toBe(200);
  const body = await res.json<{ tests: { name: string }[] }>();
  return { tests: body.tests, etag: res.headers.get("ETag") };
}

const STABLE = { s1: "pass", s2: "pass", s3: "pass" } as const;

describe("an upload rescoring its tests", () => {
  it("marks a test flaky in the upload that shows it, notifies its owners once, and says so in the summary", async () => {
    const h = await history();
    await ownedBy(h.repoId, [`@${h.member.login}`, "@org/platform-team"]);

    const first = await h.send("a", { ...STABLE, owned_flaky: "pass", other_flaky: "pass" });
    expect(first.flaky_candidates).toBe(0);
    expect(await notifications(h.repoId)).toEqual([]);
    const before = await quarantine(h.repoId, h.reader);
    expect(before.tests).toEqual([]);

    // The same commit fails both: contradiction evidence, in this very upload.
    const second = await h.send("a", { ...STABLE, owned_flaky: "fail", other_flaky: "fail" });
    expect(second.flaky_candidates).toBe(2);
    const after = await classes(h.repoId);
    expect(["flaky", "highly_flaky"]).toContain(after.owned_flaky);
    expect(["flaky", "highly_flaky"]).toContain(after.other_flaky);
    expect(after.s1).toBe("stable");

    // The quarantine list CI fetches already holds both, under a new ETag.
    const during = await quarantine(h.repoId, h.reader);
    // (by path: src/other/… before src/owned/…)
    expect(during.tests.map((t) => t.name)).toEqual(["other_flaky", "owned_flaky"]);
    expect(during.etag).not.toBe(before.etag);

    const notes = await notifications(h.repoId);
    expect(notes).toHaveLength(2);
    // The owned test is addressed to the owner who is a person with a role (the team is no user)…
    const owned = notes.find((n) => n.name === "owned_flaky");
    expect(owned).toMatchObject({ user_id: h.member.id, owners: ["@org/platform-team", `@${h.member.login}`] });
    expect(["flake_detected", "score_threshold_breach"]).toContain(owned?.type);
    // …the other to the whole repository.
    expect(notes.find((n) => n.name === "other_flaky")).toMatchObject({ user_id: null, owners: [] });
    expect((await listFor(h.member)).map((n) => n.title).sort()).toEqual([
      expect.stringMatching(/: other_flaky$/),
      expect.stringMatching(/: owned_flaky$/),
    ]);
    expect((await listFor(h.reader)).map((n) => n.title)).toEqual([expect.stringMatching(/: other_flaky$/)]);

    // A duplicate of the upload tells the client the same figure and announces nothing again.
    const duplicate = await h.again();
    expect(duplicate).toMatchObject({ isDuplicate: true, summary: { flaky_candidates: 2 } });
    expect(await notifications(h.repoId)).toHaveLength(2);

    // While the state holds, later uploads announce nothing more.
    const held = await classes(h.repoId);
    await h.send("b", { ...STABLE, owned_flaky: "pass", other_flaky: "pass" });
    const now = await classes(h.repoId);
    const changed = ["owned_flaky", "other_flaky"].filter((t) => now[t] !== held[t]);
    expect(await notifications(h.repoId)).toHaveLength(2 + changed.length);
  });

  it("calls a test that fails on every new commit broken, not flaky, and says so once", async () => {
    const h = await history();
    for (const commit of ["1", "2", "3", "4"]) await h.send(commit, { ...STABLE, broken_one: "fail" });
    expect((await classes(h.repoId)).broken_one).toBe("broken");
    const notes = await notifications(h.repoId);
    expect(notes).toEqual([
      expect.objectContaining({ type: "other", transition: "broken", name: "broken_one", severity: "error" }),
    ]);
  });

  it("announces the recovery once enough passes make the old failure rate implausible", async () => {
    const h = await history();
    // Flaky at a high rate (3 failures in 4 runs of one commit), so a dozen clean runs make that rate
    // implausible.
    for (const status of ["pass", "fail", "fail", "fail"] as const) await h.send("a", { ...STABLE, wobbly: status });
    expect(["flaky", "highly_flaky"]).toContain((await classes(h.repoId)).wobbly);
    let uploads = 0;
    while (!["stable", "suspect"].includes((await classes(h.repoId)).wobbly)) {
      uploads += 1;
      expect(uploads, "still flaky after 30 clean runs").toBeLessThan(30);
      await h.send(`c${uploads}`, { ...STABLE, wobbly: "pass" });
    }
    expect(uploads).toBeGreaterThan(3);
    const transitions = (await notifications(h.repoId)).map((n) => n.transition);
    expect(transitions.at(-1)).toBe("recovered");
    expect(transitions.filter((t) => t === "recovered")).toHaveLength(1);
    const recovered = (await notifications(h.repoId)).at(-1);
    expect(recovered).toMatchObject({ type: "other", severity: "info", user_id: null });
  });

  it("gives the same scores as the scheduled full recompute of the same data", async () => {
    const h = await history();
    const plan: [string, Record<string, Status>][] = [
      ["a", { ...STABLE, f1: "pass", f2: "fail", b1: "fail" }],
      ["a", { ...STABLE, f1: "fail", f2: "pass", b1: "fail" }],
      ["b", { ...STABLE, f1: "pass", f2: "pass", b1: "fail" }],
      ["c", { ...STABLE, f1: "fail", f2: "pass", b1: "fail" }],
      ["c", { ...STABLE, f1: "pass", f2: "pass", b1: "fail" }],
      ["d", { ...STABLE, f1: "pass", f2: "pass", b1: "fail" }],
    ];
    for (const [commit, statuses] of plan) await h.send(commit, statuses);
    const columns = sql`tc.name, fs.score, fs.class, fs.pass_rate, fs.volatility, fs.recency_fail, fs.clustering`;
    const read = async () =>
      (
        await testDb().execute(sql`
          select ${columns} from flake_scores fs join test_cases tc on tc.id = fs.test_case_id
          where fs.repo_id = ${h.repoId} order by tc.name`)
      ).rows;
    const incremental = await read();
    expect(incremental).toHaveLength(3 + 3);
    await recomputeRepository(
      serviceContext(() => h.asOf()),
      h.repoId,
      h.asOf(),
    );
    expect(await read()).toEqual(incremental);
    // And the recompute itself is idempotent.
    await recomputeRepository(
      serviceContext(() => h.asOf()),
      h.repoId,
      h.asOf(),
    );
    expect(await read()).toEqual(incremental);
  });
});
