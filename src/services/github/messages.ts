/**
 * What the webhook (src/routes/github-webhook.ts) hands the queue consumer (src/services/github/queue.ts).
 * Ids that GitHub gives as 64-bit integers travel as decimal strings: JSON numbers lose them past 2^53.
 */
export interface WorkflowRunMessage {
  kind: "workflow_run.completed";
  /** The github_workflow_runs row the webhook created for this run attempt. */
  recordId: string;
  /** The anchorpipe repository (repos.id) linked to the GitHub repository. */
  repoId: string;
  installationId: string;
  repository: { owner: string; name: string };
  workflowRunId: string;
  runAttempt: number;
  headSha: string;
  headBranch: string | null;
  pullRequests: number[];
}

export type GithubQueueMessage = WorkflowRunMessage;
