import { defineConfig } from "drizzle-kit";

/**
 * drizzle-kit only generates SQL here (`npm run db:generate`). Migrations are
 * applied and rolled back by the project's own commands (tools/db), over a
 * direct connection; never with `drizzle-kit push`, which cannot express the
 * partitioned tables.
 */
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema/index.ts",
  out: "./drizzle",
  casing: "snake_case",
  strict: true,
  verbose: true,
});
