// Runs on `npm install` (the `prepare` script): the API reference at /docs is rendered by Scalar's browser
// bundle, served by the Worker's static assets from public/ rather than from a CDN, so /docs works offline,
// in `wrangler dev` and in the browser test. The file comes from the @scalar/api-reference package; it is
// not committed.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const source = join(root, "node_modules", "@scalar", "api-reference", "dist", "browser", "standalone.js");
const target = join(root, "public", "scalar", "standalone.js");
if (existsSync(source)) {
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(source, target);
} else {
  console.warn("copy-assets: @scalar/api-reference is not installed; /docs will not render");
}
