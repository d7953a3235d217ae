// The whole schema, by domain. drizzle.config.ts lists the same files except
// test-runs.ts, whose partitioned table is created by a custom migration.
export * from "./auth";
export * from "./core";
export * from "./enums";
export * from "./github";
export * from "./privacy";
export * from "./rbac";
export * from "./security";
export * from "./telemetry";
export * from "./test-runs";
