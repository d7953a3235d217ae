// Lets `exports.default` from "cloudflare:workers" carry the Worker's own types in tests.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../../src/index");
  }
}
