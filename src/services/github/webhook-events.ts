import { decodeJson } from "../../lib/body";
import { ApiError } from "../../lib/errors";
import type { ServiceContext } from "../context";
import { type RateLimiter, rateLimited } from "../rate-limits";
import { applyInstallationEvent, applyInstallationRepositoriesEvent } from "./installations";
import { type DeliveryHeaders, handledAction, isHandledEvent, type ParsedEvent, parseEvent } from "./webhook-payloads";
import { enqueueWorkflowRun, type MessageQueue, QueueUnavailableError } from "./workflow-run-events";

/** What the webhook answers once the signature is good. */
export interface WebhookAnswer {
  status: 200 | 202;
  body: {
    deliveryId: string;
    event: string;
    action: string | null;
    /**
     * pong: a ping; applied: the installation change was made; queued: the workflow run went to the queue;
     * ignored: nothing to do (an event or action the App does not use, a repository it does not ingest for);
     * duplicate: this delivery id was handled before, nothing changed.
     */
    outcome: "pong" | "applied" | "queued" | "ignored" | "duplicate";
    isDuplicate: boolean;
    queued: boolean;
    message: string;
    /** queued: the github_workflow_runs row. */
    recordId?: string;
  };
}

export interface DeliveryInput {
  headers: DeliveryHeaders;
  /** The verified body. */
  body: Uint8Array;
  queue: MessageQueue | undefined;
  /** Deliveries per installation (UPLOAD_LIMITER, key `github:<installation id>`). */
  limiter: RateLimiter | undefined;
}

/**
 * A verified delivery: ping → 200; an event or action the App does not use → 202 with nothing stored;
 * otherwise validated, rate-limited per installation and applied once per delivery id.
 */
export async function handleDelivery(ctx: ServiceContext, input: DeliveryInput): Promise<WebhookAnswer> {
  const { event, deliveryId } = input.headers;
  const answer = (
    status: 200 | 202,
    outcome: WebhookAnswer["body"]["outcome"],
    action: string | null,
    message: string,
    recordId?: string,
  ): WebhookAnswer => ({
    status,
    body: {
      deliveryId,
      event,
      action,
      outcome,
      isDuplicate: outcome === "duplicate",
      queued: outcome === "queued",
      message,
      ...(recordId ? { recordId } : {}),
    },
  });

  if (event === "ping") return answer(200, "pong", null, "pong");
  if (!isHandledEvent(event)) return answer(202, "ignored", null, `The App does not use ${event} events.`);
  const json = decodeJson(input.body);
  const action = handledAction(event, json);
  if (action === null) return answer(202, "ignored", null, `The App does not use this ${event} action.`);
  const parsed = parseEvent(event, json);

  const limited = await rateLimited(input.limiter, `github:${installationIdOf(parsed)}`);
  if (limited) throw limited;

  const duplicate = () => answer(200, "duplicate", action, "This delivery was already handled; nothing changed.");
  switch (parsed.event) {
    case "installation":
    case "installation_repositories": {
      const result = await applyInstallation(ctx, deliveryId, parsed);
      if (!result.applied) return duplicate();
      return answer(200, "applied", action, "The installation was updated.");
    }
    case "workflow_run": {
      const outcome = await enqueueWorkflowRun(ctx, input.queue, deliveryId, parsed.payload).catch((error) => {
        if (error instanceof QueueUnavailableError) {
          throw new ApiError("service_unavailable", "The work queue is unavailable; redeliver later.");
        }
        throw error;
      });
      if (outcome.kind === "duplicate") return duplicate();
      if (outcome.kind === "ignored") {
        const why =
          outcome.reason === "not_installed"
            ? "The repository is not linked to an active installation of the App."
            : "This run attempt was already queued.";
        return answer(202, "ignored", action, why);
      }
      return answer(202, "queued", action, "The workflow run was queued for ingestion.", outcome.recordId);
    }
  }
}

function applyInstallation(ctx: ServiceContext, deliveryId: string, parsed: ParsedEvent) {
  if (parsed.event === "installation") return applyInstallationEvent(ctx, deliveryId, parsed.payload);
  if (parsed.event === "installation_repositories") {
    return applyInstallationRepositoriesEvent(ctx, deliveryId, parsed.payload);
  }
  throw new Error(`not an installation event: ${parsed.event}`);
}

function installationIdOf(parsed: ParsedEvent): string {
  return parsed.event === "workflow_run" ? parsed.payload.installation.id : parsed.payload.installation.installationId;
}
