import { ApiError } from "../lib/errors";

/**
 * Rate limits (docs/adr/0005-rate-limits.md). On Cloudflare and in
 * `wrangler dev` and the tests these are Workers rate-limiting bindings
 * (`[[ratelimits]]` in wrangler.toml), which count per key in fixed windows of
 * `RATE_LIMIT_PERIOD_SECONDS` at the location that serves the request.
 */
export interface RateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

/** The period configured for every limiter in wrangler.toml; Retry-After never promises less. */
export const RATE_LIMIT_PERIOD_SECONDS = 60;

/** The 429 to answer with when `key` is over its limit, or null when the request may go on. */
export async function rateLimited(limiter: RateLimiter | undefined, key: string): Promise<ApiError | null> {
  if (!limiter) return null;
  const { success } = await limiter.limit({ key });
  if (success) return null;
  return new ApiError(
    "rate_limited",
    "Too many requests; retry after the time in Retry-After.",
    undefined,
    RATE_LIMIT_PERIOD_SECONDS,
  );
}
