import { sql } from "drizzle-orm";
import type { ClientInfo } from "../lib/client-info";
import type { ApiError } from "../lib/errors";
import type { ServiceContext } from "./context";
import { type RateLimiter, rateLimited } from "./rate-limits";

export interface AuthFailure {
  action: "hmac_auth_failure" | "login_failure";
  subject: "security" | "session";
  /** The repository (or user) the request claimed to act for, when it named one. */
  subjectId: string | null;
  reason: string;
  description: string;
  /** More of what was tried (scheme names and the like): never the credential itself. */
  metadata?: Record<string, unknown>;
  client: ClientInfo;
}

/**
 * Records a failed authentication (docs/adr/0005-rate-limits.md). A client
 * address past its budget of failures gets the 429 to answer with, and
 * nothing is written. Otherwise the failure is counted per claimed subject,
 * reason and minute; the first failure of such a window also writes the audit
 * row, in the same statement. Returns null when the caller should answer 401.
 */
export async function recordAuthFailure(
  ctx: ServiceContext,
  failure: AuthFailure,
  limiter: RateLimiter | undefined,
): Promise<ApiError | null> {
  const limited = await rateLimited(limiter, `auth-failure:${failure.client.ipAddress ?? "unknown"}`);
  if (limited) return limited;
  const now = ctx.now();
  const windowStart = new Date(Math.floor(now.getTime() / 60_000) * 60_000).toISOString();
  const metadata = JSON.stringify({ reason: failure.reason, ...failure.metadata, windowStart });
  await ctx.db.execute(sql`
    with tally as (
      insert into auth_failure_tallies (subject_id, reason, window_start, failures, last_at)
      values (${failure.subjectId ?? ""}, ${failure.reason}, ${windowStart}, 1, ${now.toISOString()})
      on conflict (subject_id, reason, window_start) do update
        set failures = auth_failure_tallies.failures + 1, last_at = excluded.last_at
      returning (xmax = 0) as opened
    )
    insert into audit_logs (action, subject, subject_id, description, metadata, request_id, user_agent, ip_address,
      created_at)
    select ${failure.action}::audit_action, ${failure.subject}::audit_subject, ${failure.subjectId},
      ${failure.description}, ${metadata}::jsonb, ${ctx.requestId ?? null}, ${failure.client.userAgent},
      ${failure.client.ipAddress}::inet, ${now.toISOString()}
    from tally where opened`);
  return null;
}
