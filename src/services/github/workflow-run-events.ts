import { sql } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { type Delivery, deleteDeliveryQuery, deliveryCte } from "./deliveries";
import type { GithubQueueMessage, WorkflowRunMessage } from "./messages";
import type { WorkflowRunEvent } from "./webhook-payloads";

/**
 * `workflow_run` completed: when the repository is linked (repos.gh_id) and covered by the delivering
 * installation, and that installation is not suspended, the run attempt is recorded (github_workflow_runs,
 * status queued) and handed to GITHUB_QUEUE, whose consumer downloads its artifacts, ingests their reports
 * and writes the check run. The webhook answers at once; nothing slow happens in it.
 */

export type WorkflowRunOutcome =
  | { kind: "duplicate" }
  /** No linked repository under an active installation, or this run attempt is already recorded. */
  | { kind: "ignored"; reason: "not_installed" | "already_recorded" }
  | { kind: "queued"; recordId: string; repoId: string };

/** Something that can take the message: env.GITHUB_QUEUE, or a test's stand-in. */
export interface MessageQueue {
  send(message: GithubQueueMessage): Promise<unknown>;
}

export class QueueUnavailableError extends Error {
  override name = "QueueUnavailableError";
}

/** The queue message for a recorded run attempt: ids as decimal strings (they are 64-bit on GitHub). */
export function workflowRunMessage(
  payload: WorkflowRunEvent,
  record: { recordId: string; repoId: string },
): WorkflowRunMessage {
  const run = payload.workflow_run;
  return {
    kind: "workflow_run.completed",
    recordId: record.recordId,
    repoId: record.repoId,
    installationId: payload.installation.id,
    repository: { owner: payload.repository.owner, name: payload.repository.name },
    workflowRunId: run.id,
    runAttempt: run.run_attempt,
    headSha: run.head_sha.toLowerCase(),
    headBranch: run.head_branch ?? null,
    pullRequests: pullRequestNumbers(payload),
  };
}

/** The run's pull request numbers, each once. */
function pullRequestNumbers(payload: WorkflowRunEvent): number[] {
  return [...new Set(payload.workflow_run.pull_requests.map((pr) => pr.number))];
}

/**
 * Records the delivery and, when the App ingests for the repository, the run attempt (one statement).
 * A redelivery under a new delivery id of a run attempt already recorded is recorded as ignored.
 */
export async function recordWorkflowRun(
  ctx: ServiceContext,
  deliveryId: string,
  payload: WorkflowRunEvent,
): Promise<WorkflowRunOutcome> {
  const run = payload.workflow_run;
  const delivery: Delivery = {
    deliveryId,
    event: "workflow_run",
    action: payload.action,
    installationId: payload.installation.id,
  };
  const recordId = crypto.randomUUID();
  const pullRequests = pullRequestNumbers(payload);
  const now = sql`${ctx.now().toISOString()}::timestamptz`;
  const result = await ctx.db.execute<{
    recorded: boolean;
    repo_id: string | null;
    inserted: boolean;
  }>(sql`
    with target as (
      select r.id as repo_id from repos r
      where r.gh_id = ${payload.repository.ghId}::bigint
        and exists (
          select 1 from github_app_installations i
          where i.installation_id = ${payload.installation.id}::bigint and i.suspended_at is null
            and r.gh_id = any(i.repository_ids))
    ),
    known as (
      select 1 from github_workflow_runs w join target t on w.repo_id = t.repo_id
      where w.workflow_run_id = ${run.id}::bigint and w.run_attempt = ${run.run_attempt}::int
    ),
    ${deliveryCte(
      ctx,
      delivery,
      sql`(case when exists (select 1 from target) and not exists (select 1 from known)
        then 'queued' else 'ignored' end)`,
    )},
    inserted as (
      insert into github_workflow_runs (id, repo_id, installation_id, workflow_run_id, run_attempt, head_sha,
        pull_requests, status, created_at, updated_at)
      select ${recordId}::uuid, t.repo_id, ${payload.installation.id}::bigint, ${run.id}::bigint,
        ${run.run_attempt}::int, ${run.head_sha.toLowerCase()},
        (select coalesce(array_agg(value::int), '{}'::int[]) from jsonb_array_elements_text(${JSON.stringify(pullRequests)}::jsonb)),
        'queued', ${now}, ${now}
      from target t
      where exists (select 1 from delivery where outcome = 'queued')
      on conflict (repo_id, workflow_run_id, run_attempt) do nothing
      returning id
    )
    select exists (select 1 from delivery) as recorded, (select repo_id::text from target) as repo_id,
      exists (select 1 from inserted) as inserted`);
  const row = result.rows[0];
  if (!row.recorded) return { kind: "duplicate" };
  if (!row.repo_id) return { kind: "ignored", reason: "not_installed" };
  if (!row.inserted) {
    // Another delivery of the same run attempt got there first (two at once): this one did not queue.
    await ctx.db.execute(sql`update github_webhook_deliveries set outcome = 'ignored'
      where delivery_id = ${deliveryId}::uuid and outcome = 'queued'`);
    return { kind: "ignored", reason: "already_recorded" };
  }
  return { kind: "queued", recordId, repoId: row.repo_id };
}

/**
 * Records the run attempt and sends its message. When the queue refuses the message, the delivery and run
 * rows are removed again (one transaction) and QueueUnavailableError is thrown, so the webhook answers 503
 * and GitHub's redelivery of the same delivery id is not taken for a duplicate.
 */
export async function enqueueWorkflowRun(
  ctx: ServiceContext,
  queue: MessageQueue | undefined,
  deliveryId: string,
  payload: WorkflowRunEvent,
): Promise<WorkflowRunOutcome> {
  if (!queue) throw new QueueUnavailableError("GITHUB_QUEUE is not bound");
  const outcome = await recordWorkflowRun(ctx, deliveryId, payload);
  if (outcome.kind !== "queued") return outcome;
  try {
    await queue.send(workflowRunMessage(payload, outcome));
  } catch (error) {
    await ctx.db.batch([
      ctx.db.execute(sql`delete from github_workflow_runs where id = ${outcome.recordId}::uuid and status = 'queued'`),
      deleteDeliveryQuery(ctx, deliveryId),
    ]);
    throw new QueueUnavailableError("the queue did not take the message", { cause: error });
  }
  return outcome;
}

/** Finished runs older than 90 days go (their ingested results stay in the test-run tables). */
export const WORKFLOW_RUN_RETENTION_DAYS = 90;

/** Deletes up to `limit` workflow runs that finished before `cutoff`; returns how many. */
export async function purgeFinishedWorkflowRuns(ctx: ServiceContext, cutoff: Date, limit: number): Promise<number> {
  const result = await ctx.db.execute<{ n: number }>(sql`
    with gone as (
      delete from github_workflow_runs where id in (
        select id from github_workflow_runs
        where status in ('completed', 'skipped', 'dead_lettered')
          and coalesce(completed_at, updated_at) < ${cutoff.toISOString()}::timestamptz
        limit ${limit}::int)
      returning 1
    ) select count(*)::int as n from gone`);
  return result.rows[0].n;
}
