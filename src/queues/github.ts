import { createDb } from "../db/client";
import { type Bindings, loadConfig } from "../env";
import { describeFailure, failureText } from "../lib/db-errors";
import { log } from "../lib/logger";
import type { ServiceContext } from "../services/context";
import { createGithubClient, GithubApiError } from "../services/github/client";
import type { GithubQueueMessage } from "../services/github/messages";
import { processWorkflowRun, recordDeadLetter, recordRetry } from "../services/github/workflow-runs";

/**
 * The consumer of wrangler.toml's GitHub queues. A message is one completed workflow run attempt
 * (src/services/github/workflow-runs.ts). Each message is acknowledged on its own: a failure that another try
 * may cure (GitHub's 5xx or rate limits, the database unreachable) is retried later with a growing delay; on the
 * last try, or when no try can help, the run's record becomes its dead-letter record. Messages that reach the
 * dead-letter queue (an invocation that crashed or ran out of time on its last try) are recorded the same way.
 */

export const GITHUB_QUEUE = "anchorpipe-github";
export const GITHUB_DEAD_LETTER_QUEUE = "anchorpipe-github-dlq";
/** wrangler.toml's max_retries + 1. */
export const MAX_TRIES = 6;

/** 30 s, 1, 2, 4 and 8 min: GitHub's incidents and rate limits mostly pass within that. */
export function retryDelaySeconds(tries: number, retryAfterSeconds: number | null): number {
  return Math.min(Math.max(retryAfterSeconds ?? 0, 30 * 2 ** (tries - 1)), 3600);
}

export async function handleGithubQueue(batch: MessageBatch<GithubQueueMessage>, env: Bindings): Promise<void> {
  const config = loadConfig(env);
  if (!config.DATABASE_URL) {
    // Nothing can be recorded: leave every message to the queue's own retries.
    log.error("github.queue.no_database", { queue: batch.queue });
    batch.retryAll({ delaySeconds: 60 });
    return;
  }
  const ctx: ServiceContext = {
    db: createDb({ ...config, DATABASE_URL: config.DATABASE_URL }),
    now: () => new Date(),
  };

  if (batch.queue === GITHUB_DEAD_LETTER_QUEUE) {
    for (const message of batch.messages) {
      await recordDeadLetter(ctx, message.body.recordId, "the message's tries ran out without an answer");
      log.error("github.workflow_run.dead_lettered", { recordId: message.body.recordId, tries: message.attempts });
      message.ack();
    }
    return;
  }

  // One client per batch: it converts the key and fingerprints it once (its tokens are cached per isolate).
  const github =
    config.GITHUB_APP_ID && config.GITHUB_APP_PRIVATE_KEY
      ? createGithubClient({
          apiUrl: config.GITHUB_API_URL,
          appId: config.GITHUB_APP_ID,
          privateKey: config.GITHUB_APP_PRIVATE_KEY,
        })
      : null;
  for (const message of batch.messages) {
    const { recordId } = message.body;
    try {
      if (!github) throw new MisconfiguredError();
      const outcome = await processWorkflowRun(ctx, github, message.body, {
        maxIngestionBytes: config.INGESTION_MAX_BODY_BYTES,
      });
      log.info("github.workflow_run", { recordId, outcome, tries: message.attempts });
      message.ack();
    } catch (error) {
      const failure = describeFailure(error);
      const text = failureText(failure).slice(0, 1000);
      const hopeless = error instanceof GithubApiError && !error.retryable;
      if (hopeless || message.attempts >= MAX_TRIES) {
        await recordDeadLetter(ctx, recordId, text).catch(() => {});
        log.error("github.workflow_run.dead_lettered", { recordId, tries: message.attempts, ...failure });
        message.ack();
      } else {
        await recordRetry(ctx, recordId, text).catch(() => {});
        const retryAfter = error instanceof GithubApiError ? error.retryAfterSeconds : null;
        log.warn("github.workflow_run.retry", { recordId, tries: message.attempts, ...failure });
        message.retry({ delaySeconds: retryDelaySeconds(message.attempts, retryAfter) });
      }
    }
  }
}

class MisconfiguredError extends Error {
  constructor() {
    super("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are not set");
    this.name = "MisconfiguredError";
  }
}
