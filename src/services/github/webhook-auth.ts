import type { ClientInfo } from "../../lib/client-info";
import { ApiError } from "../../lib/errors";
import { recordAuthFailure } from "../auth-failures";
import type { ServiceContext } from "../context";
import type { RateLimiter } from "../rate-limits";
import { claimedDeliveryId } from "./webhook-payloads";
import { SIGNATURE_HEADER, verifyGithubSignature } from "./webhook-signature";

export interface WebhookAuthInput {
  secret: string;
  body: Uint8Array<ArrayBuffer>;
  headers: Headers;
  client: ClientInfo;
  /** Counts failed authentications per client address (AUTH_FAILURE_LIMITER); absent means unlimited. */
  failureLimiter?: RateLimiter;
}

/**
 * Proves a delivery came from GitHub: X-Hub-Signature-256 over the exact bytes received. A failure is the
 * same 401 whatever went wrong, counted and audited like an upload's (hmac_auth_failure, subject security;
 * the audit row says it came from the GitHub webhook and names the delivery it claimed to be, never the
 * signature or the body), and a client address past its budget of failures gets a 429 instead.
 */
export async function authenticateGithubWebhook(ctx: ServiceContext, input: WebhookAuthInput): Promise<void> {
  const check = await verifyGithubSignature(input.secret, input.body, input.headers.get(SIGNATURE_HEADER));
  if (check.ok) return;
  const deliveryId = claimedDeliveryId(input.headers);
  const limited = await recordAuthFailure(
    ctx,
    {
      action: "hmac_auth_failure",
      subject: "security",
      // Failures are tallied (and audited once a minute) per claimed subject and reason.
      subjectId: deliveryId ? `github-delivery:${deliveryId}` : "github-webhook",
      reason: check.reason,
      description: "GitHub webhook signature rejected",
      metadata: { source: "github_webhook", deliveryId },
      client: input.client,
    },
    input.failureLimiter,
  );
  throw limited ?? new ApiError("unauthorized", "Missing or invalid signature.");
}
