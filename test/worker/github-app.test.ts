import { sql } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { parseCodeowners, replaceCodeowners } from "../../src/services/codeowners";
import { setRole } from "../../src/services/roles";
import { createToken } from "../../src/services/tokens";
import { createUser } from "../../src/services/users";
import { api, person } from "./api-support";
import {
  fakeBlobViolations,
  fakeCheckRuns,
  fakeRequestLog,
  putFakeInstallation,
  putFakeRunArtifacts,
} from "./github-fake";
import {
  deliver,
  githubId,
  installationEvent,
  installationSpec,
  type RepoSpec,
  repoSpec,
  workflowRunEvent,
} from "./github-payloads";
import { serviceContext, testDb } from "./ingestion-support";

/**
 * Zero-configuration ingestion end to end, through the real Worker: a signed `installation` webhook links the
 * repository; a signed `workflow_run` webhook queues the run; the Worker's queue consumer authenticates as
 * the App to the fake GitHub, downloads the run's test-result artifacts, stores the runs and their scores
 * through the upload path, and writes the check run on the pull request's head commit.
 */

type Status = "pass" | "fail";

/** A JUnit report as a CI job writes it: one suite, started at `at`. */
function junit(cases: Record<string, Status>, at: Date): string {
  const body = Object.entries(cases)
    .map(([name, status]) =>
      status === "pass"
        ? `<testcase classname="src.checkout" name="${name}" file="src/checkout.test.ts" time="0.01"/>`
        : `<testcase classname="src.checkout" name="${name}" file="src/checkout.test.ts" time="0.02"><failure message="expected 200, got 503">AssertionError: expected 200, got 503</failure></testcase>`,
    )
    .join("\n    ");
  const failures = Object.values(cases).filter((s) => s === "fail").length;
  return `<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="checkout" tests="${Object.keys(cases).length}" failures="${failures}" timestamp="${at.toISOString().slice(0, 19)}">
    ${body}
  </testsuite>
</testsuites>`;
}

/** A repository linked through a signed installation webhook, with the App installed on the fake GitHub. */
async function installedRepo() {
  const installation = installationSpec();
  const repo = repoSpec(installation.account.login, `shop-${crypto.randomUUID().slice(0, 8)}`);
  await putFakeInstallation(String(installation.id), { repositories: [`${repo.owner}/${repo.name}`] });
  const res = await deliver("installation", installationEvent("created", installation, [repo]));
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  const row = await testDb().execute<{ id: string }>(sql`select id from repos where gh_id = ${repo.id}`);
  expect(row.rows).toHaveLength(1);
  return { installation, repo, repoId: row.rows[0]!.id };
}

const HOUR = 3_600_000;

async function runStatus(repoId: string, workflowRunId: number, attempt = 1) {
  const rows = await testDb().execute<{ status: string; last_error: string | null; result: unknown }>(sql`
    select status, last_error, result from github_workflow_runs
    where repo_id = ${repoId} and workflow_run_id = ${workflowRunId} and run_attempt = ${attempt}`);
  return rows.rows[0];
}

/** Puts the run's artifacts on the fake GitHub, delivers `workflow_run` completed, waits for the consumer. */
async function completeRun(
  app: { installation: { id: number }; repo: RepoSpec; repoId: string },
  run: { id: number; attempt?: number; headSha: string; pullRequests?: number[]; reports?: Record<string, string> },
) {
  if (run.reports) {
    await putFakeRunArtifacts(app.repo, String(run.id), {
      headSha: run.headSha,
      artifacts: [
        { name: "test-results-ubuntu", files: run.reports },
        // Not a test-result name: never downloaded.
        { name: "coverage", files: { "lcov.info": "TN:\nSF:src/checkout.ts\nend_of_record\n" } },
      ],
    });
  }
  const res = await deliver(
    "workflow_run",
    workflowRunEvent(app.installation.id, app.repo, {
      id: run.id,
      attempt: run.attempt,
      headSha: run.headSha,
      pullRequests: run.pullRequests,
    }),
  );
  expect(res.status, await res.clone().text()).toBe(202);
  // The queue delivers to the consumer on its own; the test only waits for the record to say it is done.
  await vi.waitFor(
    async () => {
      const row = await runStatus(app.repoId, run.id, run.attempt ?? 1);
      expect(row?.status).toBe("completed");
    },
    { timeout: 30_000, interval: 100 },
  );
  const row = await runStatus(app.repoId, run.id, run.attempt ?? 1);
  if (!row) throw new Error("the run's record is gone");
  return row;
}

async function counts(repoId: string) {
  const result = await testDb().execute<{ runs: number; ingestions: number; secrets: number }>(sql`
    select (select count(*)::int from test_runs where repo_id = ${repoId}) as runs,
      (select count(*)::int from ingestions where repo_id = ${repoId} and signature_scheme = 'github-app'
        and completed_at is not null) as ingestions,
      (select count(*)::int from hmac_secrets where repo_id = ${repoId}) as secrets`);
  return result.rows[0]!;
}

async function scores(repoId: string): Promise<Record<string, { score: number; class: string }>> {
  const result = await testDb().execute<{ name: string; score: number; class: string }>(sql`
    select tc.name, fs.score::int as score, fs.class::text as class
    from flake_scores fs join test_cases tc on tc.id = fs.test_case_id where fs.repo_id = ${repoId}`);
  return Object.fromEntries(result.rows.map((r) => [r.name, { score: r.score, class: r.class }]));
}

describe("the GitHub App, from webhook to check run", () => {
  it("stores a pull request's test runs, updates their scores and names the known flake in a check run", async () => {
    const app = await installedRepo();
    const sha = "1".repeat(40);
    const base = Date.now() - 6 * HOUR;

    // The team's CODEOWNERS says who owns the checkout tests (read back through the API later).
    const admin = await person();
    await setRole(serviceContext(), { actorId: admin.id, repoId: app.repoId, userId: admin.id, role: "admin" });
    const parsed = parseCodeowners("src/checkout* @acme/payments\n");
    if (!parsed.ok) throw new Error("CODEOWNERS did not parse");
    await replaceCodeowners(serviceContext(), { actorId: admin.id, repoId: app.repoId, rules: parsed.rules });

    // First run: everything passes. A check run says so.
    const first = await completeRun(app, {
      id: githubId(),
      headSha: sha,
      reports: { "junit/TEST-checkout.xml": junit({ pays: "pass", refunds: "pass" }, new Date(base)) },
    });
    expect(await counts(app.repoId)).toEqual({ runs: 2, ingestions: 1, secrets: 0 });
    expect(first.result).toMatchObject({ testsRun: 2, testsFailed: 0, checkRunId: expect.any(String) });
    let checks = await fakeCheckRuns(app.repo, sha);
    expect(checks).toHaveLength(1);
    expect(checks[0]).toMatchObject({ conclusion: "success", output: { title: "No test failures" } });

    // Second run on the same commit: `pays` fails (contradiction: a known flake from this very upload on) and
    // `ships`, a test never seen before, fails too.
    const second = await completeRun(app, {
      id: githubId(),
      headSha: sha,
      reports: {
        "junit/TEST-checkout.xml": junit({ pays: "fail", refunds: "pass", ships: "fail" }, new Date(base + HOUR)),
      },
    });
    expect(await counts(app.repoId)).toEqual({ runs: 5, ingestions: 2, secrets: 0 });
    const after = await scores(app.repoId);
    const pays = after["src.checkout::pays"];
    expect(["flaky", "highly_flaky"]).toContain(pays?.class);
    expect(after["src.checkout::refunds"]?.class).toBe("stable");

    checks = await fakeCheckRuns(app.repo, sha);
    const check = checks.find((c) => c.id === (second.result as { checkRunId: string }).checkRunId);
    expect(check).toMatchObject({ name: "anchorpipe: flaky tests", headSha: sha, conclusion: "failure" });
    expect(check?.output?.title).toBe("1 failure not known flaky, 1 known flaky");
    const summary = check?.output?.summary ?? "";
    const known = summary.slice(summary.indexOf("### Known flaky"));
    expect(known).toContain("`src.checkout::pays`");
    expect(known).toContain(`${pays?.score} (${pays?.class})`);
    expect(known).toContain("`@acme/payments`");
    const notKnown = summary.slice(summary.indexOf("### Not known flaky"), summary.indexOf("### Known flaky"));
    expect(notKnown).toContain("`src.checkout::ships`");
    expect(notKnown).toContain("first failure");

    // The quarantine list CI reads already holds the flake.
    const quarantine = await api("GET", `/api/repos/${app.repoId}/quarantine`, { token: admin.token });
    expect(quarantine.status).toBe(200);
    expect((await quarantine.json<{ tests: { name: string }[] }>()).tests.map((t) => t.name)).toEqual([
      "src.checkout::pays",
    ]);

    // Only the test-results artifacts were downloaded, and the blob store never saw the token.
    const log = await fakeRequestLog({ repo: `${app.repo.owner}/${app.repo.name}` });
    const downloads = log.filter((entry) => entry.path.endsWith("/zip"));
    expect(downloads).toHaveLength(2);
    expect(await fakeBlobViolations({ repo: `${app.repo.owner}/${app.repo.name}` })).toEqual([]);
  });

  it("calls a run whose every failure is a known flake neutral", async () => {
    const app = await installedRepo();
    const sha = "2".repeat(40);
    const at = Date.now() - 3 * HOUR;
    await completeRun(app, {
      id: githubId(),
      headSha: sha,
      reports: { "r.xml": junit({ pays: "pass", refunds: "pass" }, new Date(at)) },
    });
    await completeRun(app, {
      id: githubId(),
      headSha: sha,
      reports: { "r.xml": junit({ pays: "fail", refunds: "pass" }, new Date(at + HOUR)) },
    });
    const third = await completeRun(app, {
      id: githubId(),
      headSha: sha,
      reports: { "r.xml": junit({ pays: "fail", refunds: "pass" }, new Date(at + 2 * HOUR)) },
    });
    const check = (await fakeCheckRuns(app.repo, sha)).find(
      (c) => c.id === (third.result as { checkRunId: string }).checkRunId,
    );
    expect(check).toMatchObject({ conclusion: "neutral", output: { title: "1 failure, all known flaky" } });
  });

  it("stores nothing twice: a redelivered webhook, a second delivery of the run and a re-run of it", async () => {
    const app = await installedRepo();
    const sha = "3".repeat(40);
    const id = githubId();
    const reports = { "r.xml": junit({ pays: "fail", refunds: "pass" }, new Date(Date.now() - HOUR)) };
    const first = await completeRun(app, { id, headSha: sha, reports });
    const stored = await counts(app.repoId);
    expect(stored).toEqual({ runs: 2, ingestions: 1, secrets: 0 });

    // The same delivery again (GitHub's "Redeliver"): acknowledged, nothing queued.
    const event = workflowRunEvent(app.installation.id, app.repo, { id, headSha: sha });
    const deliveryId = crypto.randomUUID();
    expect((await deliver("workflow_run", event, { deliveryId })).status).toBe(202);
    const again = await deliver("workflow_run", event, { deliveryId });
    expect(again.status).toBeLessThan(300);

    // A re-run (attempt 2) lists the same artifacts: its ingestions are duplicates, the check run is updated.
    const rerun = await completeRun(app, { id, attempt: 2, headSha: sha });
    expect(await counts(app.repoId)).toEqual(stored);
    const ingestions = (rerun.result as { ingestions: { duplicate: boolean }[] }).ingestions;
    expect(ingestions.map((i) => i.duplicate)).toEqual([true]);
    const checks = await fakeCheckRuns(app.repo, sha);
    expect(checks).toHaveLength(1);
    expect(checks[0]!.id).toBe((first.result as { checkRunId: string }).checkRunId);
    expect(checks[0]!.updates).toBeGreaterThanOrEqual(1);
  });

  it("records reports it cannot read, and writes no check run for a push", async () => {
    const app = await installedRepo();
    const sha = "4".repeat(40);
    const done = await completeRun(app, {
      id: githubId(),
      headSha: sha,
      pullRequests: [],
      reports: {
        "good.xml": junit({ pays: "pass" }, new Date(Date.now() - HOUR)),
        "broken.xml": '<?xml version="1.0"?><testsuites><testsuite name="x"><testcase name="a">',
      },
    });
    expect(done.result).toMatchObject({
      checkRunId: null,
      checkRunNote: "not a pull request's run",
      rejected: [
        { artifact: "test-results-ubuntu", format: "junit", message: expect.stringMatching(/^broken\.xml: /) },
      ],
    });
    // The broken report is left out on its own: the good one is stored.
    expect(await counts(app.repoId)).toEqual({ runs: 1, ingestions: 1, secrets: 0 });
    expect(await fakeCheckRuns(app.repo, sha)).toEqual([]);
  });

  it("makes the person who installs the App admin of the repositories it creates for them", async () => {
    const githubUserId = githubId();
    const login = `dev-${crypto.randomUUID().slice(0, 8)}`;
    const user = await createUser(serviceContext(), { login, githubId: String(githubUserId) });
    const { token } = await createToken(serviceContext(), { userId: user.id });
    const installation = installationSpec();
    const repo = repoSpec(installation.account.login, `mine-${crypto.randomUUID().slice(0, 8)}`);
    const other = repoSpec(installation.account.login, `theirs-${crypto.randomUUID().slice(0, 8)}`);

    // Someone without an anchorpipe account adds a repository: it is created, with nobody's role on it.
    const stranger = installationEvent("created", installation, [other], { login: "stranger", id: githubId() });
    expect((await deliver("installation", stranger)).status).toBeLessThan(300);
    const res = await deliver("installation_repositories", {
      ...installationEvent("created", installation, undefined, { login, id: githubUserId }),
      action: "added",
      repository_selection: "selected",
      repositories_added: [
        { id: repo.id, node_id: "R", name: repo.name, full_name: `${repo.owner}/${repo.name}`, private: true },
      ],
      repositories_removed: [],
    });
    expect(res.status, await res.clone().text()).toBeLessThan(300);

    const roles = await testDb().execute<{ name: string; role: string }>(sql`
      select r.name, urr.role::text as role from user_repo_roles urr join repos r on r.id = urr.repo_id
      where urr.user_id = ${user.id}`);
    expect(roles.rows).toEqual([{ name: repo.name, role: "admin" }]);
    const history = await testDb().execute<{ action: string; new_role: string }>(sql`
      select action, new_role::text as new_role from role_audit_logs where target_user_id = ${user.id}`);
    expect(history.rows).toEqual([{ action: "assigned", new_role: "admin" }]);

    // They see it in their repositories at once; the one the stranger added is not theirs.
    const list = await api("GET", "/api/repos", { token });
    expect(list.status).toBe(200);
    const names = await list.json<{ items?: { name: string }[]; repos?: { name: string }[] }>();
    expect(JSON.stringify(names)).toContain(repo.name);
    expect(JSON.stringify(names)).not.toContain(other.name);
  });
});
