import { defineConfig } from "vitest/config";

/**
 * `npm run test:browser`: the API reference at /docs rendered by Scalar in headless Chromium, against the
 * real Worker under `wrangler dev`. Not part of `npm test`: it needs Debian's `chromium` (README, Testing),
 * which `.ci/run` installs before running it. No database: /docs and /api/openapi.json need none.
 */
export default defineConfig({
  test: {
    name: "browser",
    include: ["test/browser/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
