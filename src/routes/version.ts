import { Hono } from "hono";
import packageJson from "../../package.json";
import type { AppEnv } from "../app-env";

/**
 * The git commit the Worker was built from, replaced at build time by `wrangler deploy --define
 * __ANCHORPIPE_COMMIT__:"<sha>"` (npm run build, npm run deploy). Without the define the identifier does
 * not exist, which `typeof` answers without throwing: "unknown".
 */
declare const __ANCHORPIPE_COMMIT__: string | undefined;

export function buildCommit(): string {
  const commit = typeof __ANCHORPIPE_COMMIT__ === "string" ? __ANCHORPIPE_COMMIT__ : "";
  return /^[0-9a-f]{7,40}$/.test(commit) ? commit : "unknown";
}

export const versionRoutes = new Hono<AppEnv>();

versionRoutes.get("/", (c) => c.json({ name: packageJson.name, version: packageJson.version, commit: buildCommit() }));
