import { sql } from "drizzle-orm";
import { FORMAT_FRAMEWORKS, LIMITS, type ReportFormat } from "../../contract/ingestion";
import { ApiError } from "../../lib/errors";
import type { ServiceContext } from "../context";
import { ingestAppReports } from "../ingest-upload";
import {
  ARTIFACT_LIMITS,
  ArtifactUnreadableError,
  artifactNameMatcher,
  DEFAULT_ARTIFACT_PATTERNS,
  reportsInZip,
  type ZippedReport,
} from "./artifacts";
import { checkRunFor, failedTests } from "./check-run";
import { GithubApiError, type GithubClient } from "./client";
import type { WorkflowRunMessage } from "./messages";

/**
 * Zero-configuration ingestion: a completed workflow run's test reports, fetched by the App. Its artifacts
 * whose names match the repository's patterns are downloaded and unzipped, each report's format is
 * detected, and the reports are stored through the same service as uploads, one ingestion per artifact and
 * format (split where an upload would be). The ingestion's idempotency key names the artifact, so a
 * redelivered webhook, a retried message or a re-run that lists the same artifacts stores nothing twice.
 * Then, for a pull request, the check run on its head commit is created or updated.
 */

/** What the run's record keeps (github_workflow_runs.result). */
export interface WorkflowRunResult {
  artifacts: {
    id: string;
    name: string;
    reports: number;
    skipped: { path: string; reason: string }[];
  }[];
  /** Artifacts not read, and why (name not matched is not listed: that is most artifacts). */
  skippedArtifacts: { id: string; name: string; reason: string }[];
  ingestions: { id: string; format: ReportFormat; tests: number; failed: number; duplicate: boolean }[];
  /** Reports the service could not parse: stored nowhere, said here. */
  rejected: { artifact: string; format: ReportFormat; message: string }[];
  testsRun: number;
  testsFailed: number;
  checkRunId: string | null;
  /** Why no check run was written, when none was. */
  checkRunNote?: string;
}

type ClaimedRun = {
  attempts: number;
  linked: boolean;
  patterns: string[] | null;
  check_run_id: string | null;
};

/**
 * Claims the run (queued or processing → processing, one more attempt) and says whether its repository is
 * still linked to a live installation. Null when the run is finished already (a duplicate message).
 */
async function claim(ctx: ServiceContext, message: WorkflowRunMessage): Promise<ClaimedRun | null> {
  const result = await ctx.db.execute<ClaimedRun>(sql`
    update github_workflow_runs w set status = 'processing', attempts = w.attempts + 1,
      updated_at = ${ctx.now().toISOString()}
    where w.id = ${message.recordId} and w.repo_id = ${message.repoId} and w.status in ('queued', 'processing')
    returning w.attempts,
      exists (
        select 1 from repos r join github_app_installations i on r.gh_id = any(i.repository_ids)
        where r.id = w.repo_id and i.installation_id = w.installation_id and i.suspended_at is null
      ) as linked,
      (select rc.config->'githubArtifactPatterns' from repository_configs rc where rc.repo_id = w.repo_id) as patterns,
      (select p.check_run_id::text from github_workflow_runs p
        where p.repo_id = w.repo_id and p.workflow_run_id = w.workflow_run_id and p.check_run_id is not null
        order by p.run_attempt desc limit 1) as check_run_id`);
  return result.rows[0] ?? null;
}

async function finish(
  ctx: ServiceContext,
  recordId: string,
  status: "completed" | "skipped",
  result: WorkflowRunResult | null,
  note: string | null,
): Promise<void> {
  const now = ctx.now().toISOString();
  await ctx.db.execute(sql`
    update github_workflow_runs set status = ${status}, result = ${result ? JSON.stringify(result) : null}::jsonb,
      check_run_id = ${result?.checkRunId ?? null}::bigint, last_error = ${note}, completed_at = ${now},
      updated_at = ${now}
    where id = ${recordId}`);
}

/** Records why this try failed and puts the run back in the queue's hands. */
export async function recordRetry(ctx: ServiceContext, recordId: string, error: string): Promise<void> {
  await ctx.db.execute(sql`
    update github_workflow_runs set status = 'queued', last_error = ${error}, updated_at = ${ctx.now().toISOString()}
    where id = ${recordId} and status = 'processing'`);
}

/** The dead-letter record: retries ran out (or cannot help); the run stays visible with its last error. */
export async function recordDeadLetter(ctx: ServiceContext, recordId: string, error: string): Promise<void> {
  const now = ctx.now().toISOString();
  await ctx.db.execute(sql`
    update github_workflow_runs set status = 'dead_lettered', last_error = ${error}, completed_at = ${now},
      updated_at = ${now}
    where id = ${recordId} and status in ('queued', 'processing')`);
}

export async function processWorkflowRun(
  ctx: ServiceContext,
  github: GithubClient,
  message: WorkflowRunMessage,
  options: { maxIngestionBytes: number },
): Promise<"completed" | "skipped" | "already-done"> {
  const run = await claim(ctx, message);
  if (!run) return "already-done";
  if (!run.linked) {
    await finish(ctx, message.recordId, "skipped", null, "the repository is no longer linked to a live installation");
    return "skipped";
  }

  const result: WorkflowRunResult = {
    artifacts: [],
    skippedArtifacts: [],
    ingestions: [],
    rejected: [],
    testsRun: 0,
    testsFailed: 0,
    checkRunId: run.check_run_id,
  };
  const matches = artifactNameMatcher(run.patterns ?? DEFAULT_ARTIFACT_PATTERNS);
  const artifacts = await github.listRunArtifacts(message.installationId, message.repository, message.workflowRunId);
  for (const artifact of artifacts) {
    if (!matches(artifact.name)) continue;
    const skip = (reason: string) => result.skippedArtifacts.push({ id: artifact.id, name: artifact.name, reason });
    if (artifact.expired) {
      skip("expired");
      continue;
    }
    if (artifact.sizeInBytes > ARTIFACT_LIMITS.zipBytes) {
      skip(`larger than ${ARTIFACT_LIMITS.zipBytes} bytes`);
      continue;
    }
    let zipped: { reports: ZippedReport[]; skipped: { path: string; reason: string }[] };
    try {
      const zip = await github.downloadArtifact(
        message.installationId,
        message.repository,
        artifact.id,
        ARTIFACT_LIMITS.zipBytes,
      );
      zipped = reportsInZip(zip);
    } catch (error) {
      // Gone or unreadable: another try will not change that. Anything else goes up, for a retry.
      if (error instanceof ArtifactUnreadableError) skip(error.message);
      else if (error instanceof GithubApiError && !error.retryable) skip(error.message);
      else throw error;
      continue;
    }
    result.artifacts.push({
      id: artifact.id,
      name: artifact.name,
      reports: zipped.reports.length,
      skipped: zipped.skipped.slice(0, 20),
    });
    for (const [index, batch] of batches(zipped.reports, options.maxIngestionBytes).entries()) {
      await ingestBatch(ctx, message, artifact, batch, index, result);
    }
  }

  if (message.pullRequests.length === 0) {
    result.checkRunNote = "not a pull request's run";
  } else if (result.ingestions.length === 0) {
    result.checkRunNote = "no test reports in the run's artifacts";
  } else {
    await writeCheckRun(ctx, github, message, result);
  }
  await finish(ctx, message.recordId, "completed", result, null);
  return "completed";
}

/** A format's reports in groups an upload could carry: under the body cap and the report count. */
function batches(reports: ZippedReport[], maxBytes: number): ZippedReport[][] {
  const byFormat = new Map<ReportFormat, ZippedReport[]>();
  for (const report of reports) {
    const group = byFormat.get(report.format);
    if (group) group.push(report);
    else byFormat.set(report.format, [report]);
  }
  const out: ZippedReport[][] = [];
  for (const group of byFormat.values()) {
    let current: ZippedReport[] = [];
    let size = 0;
    for (const report of group) {
      if (current.length > 0 && (size + report.bytes.byteLength > maxBytes || current.length === LIMITS.reports)) {
        out.push(current);
        current = [];
        size = 0;
      }
      current.push(report);
      size += report.bytes.byteLength;
    }
    if (current.length > 0) out.push(current);
  }
  return out;
}

async function ingestBatch(
  ctx: ServiceContext,
  message: WorkflowRunMessage,
  artifact: { id: string; name: string; digest: string | null },
  batch: ZippedReport[],
  index: number,
  result: WorkflowRunResult,
): Promise<void> {
  const format = batch[0]!.format;
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  const reports: { path: string; content: string }[] = [];
  for (const report of batch) {
    try {
      reports.push({ path: report.path, content: decoder.decode(report.bytes) });
    } catch {
      result.rejected.push({ artifact: artifact.name, format, message: `${report.path} is not UTF-8 text` });
    }
  }
  const idempotencyKey = `workflow-run:${message.workflowRunId}:artifact:${artifact.id}:${format}:${index}`;
  // A report that does not parse refuses the whole upload, naming it: it is left out, said on its own, and
  // the rest is sent again (nothing was written). Each pass drops one, so the loop ends.
  while (reports.length > 0) {
    const payload = {
      repo_id: message.repoId,
      commit_sha: message.headSha,
      // As the uploader names a GitHub Actions run: a re-run is another execution, so another run.
      run_id: `${message.workflowRunId}-${message.runAttempt}`,
      framework: FORMAT_FRAMEWORKS[format],
      branch: message.headBranch,
      pull_request: message.pullRequests[0] === undefined ? null : String(message.pullRequests[0]),
      idempotency_key: idempotencyKey,
      metadata: { source: "github-app", workflow_run_id: message.workflowRunId, artifact: artifact.name },
      reports: reports.map((report) => ({ format, content: report.content })),
    };
    try {
      const { outcome, response } = await ingestAppReports(ctx, {
        repoId: message.repoId,
        payload,
        contentId: `${idempotencyKey}:${artifact.digest ?? ""}`,
      });
      result.ingestions.push({
        id: response.ingestionId,
        format,
        tests: response.summary.tests_parsed,
        failed: response.summary.tests_failed,
        duplicate: outcome === "duplicate",
      });
      result.testsRun += response.summary.tests_parsed;
      result.testsFailed += response.summary.tests_failed;
      return;
    } catch (error) {
      // What the service refuses is the reports' problem: said in the record, not retried.
      if (!(error instanceof ApiError) || error.status >= 500) throw error;
      const detail = Array.isArray(error.details) ? (error.details[0] as { path: string; message: string }) : undefined;
      const broken = /^reports\.(\d+)\.content$/.exec(detail?.path ?? "");
      if (detail && broken) {
        const [report] = reports.splice(Number(broken[1]), 1);
        result.rejected.push({ artifact: artifact.name, format, message: `${report!.path}: ${detail.message}` });
        continue;
      }
      result.rejected.push({
        artifact: artifact.name,
        format,
        message: detail ? `${detail.path}: ${detail.message}` : error.message,
      });
      return;
    }
  }
}

async function writeCheckRun(
  ctx: ServiceContext,
  github: GithubClient,
  message: WorkflowRunMessage,
  result: WorkflowRunResult,
): Promise<void> {
  const failures = await failedTests(ctx, {
    repoId: message.repoId,
    ingestionIds: result.ingestions.map((ingestion) => ingestion.id),
  });
  const input = checkRunFor({
    headSha: message.headSha,
    externalId: message.recordId,
    failures,
    testsRun: result.testsRun,
  });
  try {
    if (result.checkRunId) {
      await github.updateCheckRun(message.installationId, message.repository, result.checkRunId, input);
    } else {
      result.checkRunId = (await github.createCheckRun(message.installationId, message.repository, input)).id;
    }
  } catch (error) {
    // Missing the Checks permission (403) must not lose the ingestion: said in the record.
    if (error instanceof GithubApiError && !error.retryable) {
      result.checkRunNote = `the check run could not be written: ${error.message}`;
      return;
    }
    throw error;
  }
}
