import { DELIVERY_RETENTION_DAYS, purgeDeliveries } from "../services/github/deliveries";
import { purgeFinishedWorkflowRuns, WORKFLOW_RUN_RETENTION_DAYS } from "../services/github/workflow-run-events";
import { type Job, skipped } from "./types";

/** Rows deleted per statement and table; a run repeats up to `MAX_ROUNDS` times, the next hour does the rest. */
const BATCH = 5_000;
const MAX_ROUNDS = 20;
const DAY_MS = 86_400_000;

/**
 * Hourly: forgets webhook deliveries received more than 30 days before the scheduled time (GitHub redelivers
 * for 3 days, so an older id will not come back) and workflow runs that finished more than 90 days before it
 * (their test results stay; only the App's bookkeeping goes). Runs still queued or processing are kept
 * whatever their age. The cut-offs come from the scheduled time, never the clock, so a late run does the same.
 */
export const githubUpkeep: Job = {
  name: "github-upkeep",
  async run({ db, scheduledTime }) {
    if (!db) return skipped("DATABASE_URL is not configured");
    const ctx = { db, now: () => scheduledTime };
    const deliveryCutoff = new Date(scheduledTime.getTime() - DELIVERY_RETENTION_DAYS * DAY_MS);
    const runCutoff = new Date(scheduledTime.getTime() - WORKFLOW_RUN_RETENTION_DAYS * DAY_MS);
    const counts = { deliveries: 0, workflowRuns: 0 };
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const deliveries = await purgeDeliveries(ctx, deliveryCutoff, BATCH);
      const workflowRuns = await purgeFinishedWorkflowRuns(ctx, runCutoff, BATCH);
      counts.deliveries += deliveries;
      counts.workflowRuns += workflowRuns;
      if (deliveries < BATCH && workflowRuns < BATCH) break;
    }
    return { outcome: "succeeded", counts };
  },
};
