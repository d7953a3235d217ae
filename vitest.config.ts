import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["./test/global-setup.ts"],
    // Request logs of passing tests are noise; a failing test still shows its output.
    silent: "passed-only",
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
          // Set-up makes fresh databases (and some files start wrangler dev) while other files run on two
          // cores: a loaded machine is slow, not broken.
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                DATABASE_URL: inject("workerDatabaseUrl"),
                DATABASE_URL_READONLY: inject("readonlyDatabaseUrl"),
                NEON_LOCAL_GATEWAY: "true",
                ENVIRONMENT: "test",
                HMAC_KEK: inject("hmacKek"),
                GATEWAY_URL: inject("gatewayUrl"),
                // The GitHub App, pointed at the run's fake GitHub (test/support/fake-github.ts).
                GITHUB_API_URL: inject("githubApiUrl"),
                GITHUB_APP_ID: inject("githubAppId"),
                GITHUB_APP_PRIVATE_KEY: inject("githubPrivateKey"),
                GITHUB_WEBHOOK_SECRET: inject("githubWebhookSecret"),
              },
              // The test-run archive (wrangler.toml's ARCHIVE), in memory for the run.
              r2Buckets: ["ARCHIVE"],
              // The suite's requests share one client address and a few repositories: limits far above what
              // it sends, and strict copies that the rate-limit tests swap in (test/worker/rate-limits.test.ts).
              ratelimits: {
                AUTH_FAILURE_LIMITER: { namespace_id: "1001", simple: { limit: 1_000_000, period: 60 } },
                UPLOAD_LIMITER: { namespace_id: "1002", simple: { limit: 1_000_000, period: 60 } },
                API_LIMITER: { namespace_id: "1003", simple: { limit: 1_000_000, period: 60 } },
                STRICT_AUTH_FAILURE_LIMITER: { namespace_id: "9001", simple: { limit: 5, period: 60 } },
                STRICT_UPLOAD_LIMITER: { namespace_id: "9002", simple: { limit: 5, period: 60 } },
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          testTimeout: 30_000,
          // Scans each file's console output for secrets when it ends (test/worker/log-scan.setup.ts).
          setupFiles: ["./test/worker/log-scan.setup.ts"],
        },
      },
    ],
  },
});
