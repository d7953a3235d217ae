import { defineConfig } from "drizzle-kit";

/**
 * drizzle-kit only generates SQL here (`npm run db:generate`). Migrations are
 * applied and rolled back by the project's own commands (tools/db), over a
 * direct connection; never with `drizzle-kit push`, which cannot express the
 * partitioned tables.
 */
export default defineConfig({
  dialect: "postgresql",
  // Every schema file but test-runs.ts: test_runs is partitioned, which drizzle-kit cannot
  // express, so a custom migration creates it (drizzle/0002_test_runs_partitioned.sql).
  schema: [
    "./src/db/schema/auth.ts",
    "./src/db/schema/core.ts",
    "./src/db/schema/enums.ts",
    "./src/db/schema/github.ts",
    "./src/db/schema/privacy.ts",
    "./src/db/schema/rbac.ts",
    "./src/db/schema/security.ts",
    "./src/db/schema/telemetry.ts",
  ],
  out: "./drizzle",
  casing: "snake_case",
  strict: true,
  verbose: true,
});
