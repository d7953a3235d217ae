import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { GITHUB_DEAD_LETTER_QUEUE, GITHUB_QUEUE, MAX_TRIES, retryDelaySeconds } from "../../src/queues/github";
import type { WorkflowRunMessage } from "../../src/services/github/messages";
import {
  githubPaths,
  injectFakeFailure,
  injectSecondaryRateLimit,
  putFakeInstallation,
  putFakeRunArtifacts,
} from "./github-fake";
import { deliver, githubId, installationEvent, installationSpec, repoSpec } from "./github-payloads";
import { testDb } from "./ingestion-support";

/**
 * The queue consumer's side of a workflow run, driven message by message through the Worker's own queue()
 * handler: what is retried (and after how long), what becomes a dead letter, what is done once only.
 */

const JUNIT = `<?xml version="1.0"?><testsuite name="s" tests="1" timestamp="${new Date(Date.now() - 3_600_000)
  .toISOString()
  .slice(0, 19)}"><testcase classname="q" name="works"/></testsuite>`;

/** A linked repository with a queued run record and the message the webhook would have sent for it. */
async function queuedRun() {
  const installation = installationSpec();
  const repo = repoSpec(installation.account.login, `queue-${crypto.randomUUID().slice(0, 8)}`);
  const full = `${repo.owner}/${repo.name}`;
  await putFakeInstallation(String(installation.id), { repositories: [full] });
  expect((await deliver("installation", installationEvent("created", installation, [repo]))).status).toBeLessThan(300);
  const runId = String(githubId());
  const { headSha } = await putFakeRunArtifacts(repo, runId, {
    artifacts: [{ name: "junit-results", files: { "TEST-q.xml": JUNIT } }],
  });
  // Written as the webhook writes it; the message is not sent to the queue, the test hands it over itself.
  const row = await testDb().execute<{ id: string; repo_id: string }>(sql`
    insert into github_workflow_runs (repo_id, installation_id, workflow_run_id, run_attempt, head_sha, pull_requests)
    select id, ${installation.id}, ${runId}, 1, ${headSha}, '{}' from repos where gh_id = ${repo.id}
    returning id, repo_id`);
  const message: WorkflowRunMessage = {
    kind: "workflow_run.completed",
    recordId: row.rows[0]!.id,
    repoId: row.rows[0]!.repo_id,
    installationId: String(installation.id),
    repository: { owner: repo.owner, name: repo.name },
    workflowRunId: runId,
    runAttempt: 1,
    headSha,
    headBranch: "main",
    pullRequests: [],
  };
  return { installation, repo, runId, message };
}

async function consume(message: WorkflowRunMessage, attempts: number, queue = GITHUB_QUEUE) {
  const batch = createMessageBatch<WorkflowRunMessage>(queue, [
    { id: `m-${crypto.randomUUID()}`, timestamp: new Date(), attempts, body: message },
  ]);
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

async function record(recordId: string) {
  const result = await testDb().execute<{ status: string; attempts: number; last_error: string | null }>(
    sql`select status, attempts, last_error from github_workflow_runs where id = ${recordId}`,
  );
  return result.rows[0]!;
}

async function storedRuns(repoId: string) {
  const result = await testDb().execute<{ n: number }>(
    sql`select count(*)::int as n from test_runs where repo_id = ${repoId}`,
  );
  return result.rows[0]!.n;
}

describe("the GitHub queue consumer", () => {
  it("retries GitHub's 5xx after 30 s, then succeeds on the next try", async () => {
    const run = await queuedRun();
    await injectFakeFailure({ path: githubPaths.runArtifacts(run.repo, run.runId), status: 502 });
    const first = await consume(run.message, 1);
    expect(first.explicitAcks).toEqual([]);
    expect(first.retryMessages).toEqual([{ msgId: expect.any(String) }]);
    expect(await record(run.message.recordId)).toMatchObject({
      status: "queued",
      attempts: 1,
      last_error: expect.stringContaining("502"),
    });
    expect(await storedRuns(run.message.repoId)).toBe(0);

    const second = await consume(run.message, 2);
    expect(second.explicitAcks).toHaveLength(1);
    expect(await record(run.message.recordId)).toMatchObject({ status: "completed", attempts: 2 });
    expect(await storedRuns(run.message.repoId)).toBe(1);

    // The same message once more (the queue delivers at least once): acknowledged, nothing done.
    const third = await consume(run.message, 1);
    expect(third.explicitAcks).toHaveLength(1);
    expect(await record(run.message.recordId)).toMatchObject({ status: "completed", attempts: 2 });
    expect(await storedRuns(run.message.repoId)).toBe(1);
  });

  it("waits as long as GitHub's rate limit asks, else 30 s doubling per try", async () => {
    const run = await queuedRun();
    await injectSecondaryRateLimit(githubPaths.runArtifacts(run.repo, run.runId), 300);
    const result = await consume(run.message, 1);
    expect(result.retryMessages).toHaveLength(1);
    expect(await record(run.message.recordId)).toMatchObject({ last_error: expect.stringContaining("rate limit") });
    // (The test harness does not report a retry's delay: the rule is checked on its own.)
    expect([1, 2, 3, 4, 5].map((tries) => retryDelaySeconds(tries, null))).toEqual([30, 60, 120, 240, 480]);
    expect(retryDelaySeconds(1, 300)).toBe(300);
    expect(retryDelaySeconds(5, 60)).toBe(480);
    expect(retryDelaySeconds(1, 86_400)).toBe(3600);
  });

  it("makes the record a dead letter on the last try", async () => {
    const run = await queuedRun();
    await injectFakeFailure({ path: githubPaths.runArtifacts(run.repo, run.runId), status: 503 });
    const result = await consume(run.message, MAX_TRIES);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(1);
    expect(await record(run.message.recordId)).toMatchObject({
      status: "dead_lettered",
      last_error: expect.stringContaining("503"),
    });
  });

  it("makes the record a dead letter at once when no try can help (the run is gone)", async () => {
    const run = await queuedRun();
    await injectFakeFailure({
      path: githubPaths.runArtifacts(run.repo, run.runId),
      status: 404,
      body: { message: "Not Found" },
    });
    const result = await consume(run.message, 1);
    expect(result.retryMessages).toEqual([]);
    expect(await record(run.message.recordId)).toMatchObject({ status: "dead_lettered" });
  });

  it("records what reaches the dead-letter queue", async () => {
    const run = await queuedRun();
    const result = await consume(run.message, 1, GITHUB_DEAD_LETTER_QUEUE);
    expect(result.explicitAcks).toHaveLength(1);
    expect(await record(run.message.recordId)).toMatchObject({
      status: "dead_lettered",
      last_error: "the message's tries ran out without an answer",
    });
  });

  it("skips a run whose installation was suspended since", async () => {
    const run = await queuedRun();
    const suspended = { ...run.installation, suspendedAt: "2026-11-02T11:00:00Z", suspendedBy: "octocat" };
    expect((await deliver("installation", installationEvent("suspend", suspended))).status).toBeLessThan(300);
    const result = await consume(run.message, 1);
    expect(result.explicitAcks).toHaveLength(1);
    expect(await record(run.message.recordId)).toMatchObject({
      status: "skipped",
      last_error: "the repository is no longer linked to a live installation",
    });
    expect(await storedRuns(run.message.repoId)).toBe(0);
  });
});
