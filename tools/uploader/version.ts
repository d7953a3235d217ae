import { readFileSync } from "node:fs";

/** Replaced by the package build (build.ts) with the package's version. */
declare const ANCHORPIPE_UPLOADER_VERSION: string | undefined;

/** The uploader's version: the one of its package manifest, packages/uploader/package.json. */
export function uploaderVersion(): string {
  if (typeof ANCHORPIPE_UPLOADER_VERSION === "string") return ANCHORPIPE_UPLOADER_VERSION;
  try {
    const manifest = new URL("../../packages/uploader/package.json", import.meta.url);
    return (JSON.parse(readFileSync(manifest, "utf8")) as { version?: string }).version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}
