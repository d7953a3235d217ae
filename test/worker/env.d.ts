// Lets `exports.default` from "cloudflare:workers" carry the Worker's own types in tests.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../../src/index");
  }
}

declare namespace Cloudflare {
  interface Env {
    /** Test only: the local gateway's base URL, for request counts (GET /stats). */
    GATEWAY_URL?: string;
    /** Test only: rate limiters with low limits (vitest.config.ts), swapped in by the rate-limit tests. */
    STRICT_AUTH_FAILURE_LIMITER?: RateLimit;
    STRICT_UPLOAD_LIMITER?: RateLimit;
  }
}
