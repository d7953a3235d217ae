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
  }
}
