// The bindings wrangler hands the Worker (wrangler.toml [vars], secrets, dev/test vars).
// They are only trusted after src/env.ts has validated them.
declare namespace Cloudflare {
  interface Env {
    DATABASE_URL?: string;
    DATABASE_URL_READONLY?: string;
    NEON_LOCAL_GATEWAY?: string;
    ENVIRONMENT?: string;
    HMAC_KEK?: string;
    INGESTION_MAX_BODY_BYTES?: string;
    /** Bearer token for GET /api/metrics (a secret). */
    OPERATOR_TOKEN?: string;
    /** Workers rate-limiting bindings (wrangler.toml [[ratelimits]]; docs/adr/0005-rate-limits.md). */
    AUTH_FAILURE_LIMITER?: RateLimit;
    UPLOAD_LIMITER?: RateLimit;
    /** Requests per identity (user) to the authenticated API. */
    API_LIMITER?: RateLimit;
    /** Test-run archive (wrangler.toml [[r2_buckets]]; src/services/retention/manifest.ts). */
    ARCHIVE?: R2Bucket;
    /** The GitHub App's secrets and settings (validated in src/env.ts). */
    GITHUB_WEBHOOK_SECRET?: string;
    GITHUB_APP_ID?: string;
    GITHUB_APP_PRIVATE_KEY?: string;
    GITHUB_API_URL?: string;
    /** Workflow runs whose reports the GitHub App ingests (wrangler.toml [[queues]]; src/services/github). */
    GITHUB_QUEUE?: Queue<import("./services/github/messages").GithubQueueMessage>;
  }
}
