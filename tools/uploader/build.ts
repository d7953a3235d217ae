/**
 * `npm run build:uploader`: bundles the uploader into the installable package in packages/uploader.
 *
 * esbuild bundles cli.ts with everything it imports (the wire contract and zod, commander, tinyglobby,
 * saxes, p-retry, cli-progress) into one ES module for Node 18, so the package has no dependencies and runs
 * without this repository. The manifest, packages/uploader/package.json, is the one source of the name,
 * version, bin and engines; the README is this folder's. `npm pack ./packages/uploader` then makes the
 * tarball.
 */
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";

const ROOT = path.resolve(import.meta.dirname, "../..");
export const PACKAGE_DIR = path.join(ROOT, "packages/uploader");

/** The oldest Node the package supports: esbuild lowers syntax to it, and the bundle is checked for newer APIs. */
export const NODE_TARGET = "node18";

/**
 * APIs newer than Node 18 that a dependency might use unnoticed: esbuild lowers syntax, not library calls.
 * Each is looked for as a property access or call in the bundle.
 */
const NEWER_THAN_NODE_18: Array<[RegExp, string]> = [
  [/\.isWellFormed\(|\.toWellFormed\(/, "String.prototype.isWellFormed / toWellFormed (Node 20)"],
  [/\bimport\.meta\.(?:dirname|filename)\b/, "import.meta.dirname / filename (Node 20.11)"],
  [
    /\b(?:fs|fsp|promises)\.glob(?:Sync)?\(|\{[^}]*\bglob(?:Sync)?\b[^}]*\}\s*from\s*"(?:node:)?fs/,
    "fs.glob (Node 22)",
  ],
  [/\bPromise\.withResolvers\b/, "Promise.withResolvers (Node 22)"],
  [/\bArray\.fromAsync\b/, "Array.fromAsync (Node 22)"],
  [/\b(?:Object|Map)\.groupBy\b/, "Object.groupBy / Map.groupBy (Node 21)"],
  [/\.(?:toSorted|toReversed|toSpliced)\(/, "Array.prototype.toSorted / toReversed / toSpliced (Node 20)"],
  [/\bstyleText\b/, "util.styleText (Node 20.12)"],
  [/\bgetBuiltinModule\b/, "process.getBuiltinModule (Node 22.3)"],
];

export interface BuiltPackage {
  /** The package folder (what `npm pack` takes). */
  dir: string;
  /** The bundled CLI. */
  bin: string;
  name: string;
  version: string;
  bytes: number;
}

interface Manifest {
  name: string;
  version: string;
  bin: Record<string, string>;
}

/**
 * Builds the package into `outDir` (default: packages/uploader itself). Another folder gets a copy of the
 * manifest, so tests can build and pack without touching the checkout.
 */
export async function buildUploaderPackage(outDir: string = PACKAGE_DIR): Promise<BuiltPackage> {
  const manifestText = await readFile(path.join(PACKAGE_DIR, "package.json"), "utf8");
  const manifest = JSON.parse(manifestText) as Manifest;
  const binPath = manifest.bin.anchorpipe;
  if (!binPath) throw new Error("packages/uploader/package.json has no bin.anchorpipe");
  const bin = path.join(outDir, binPath);

  await mkdir(path.dirname(bin), { recursive: true });
  await build({
    entryPoints: [path.join(ROOT, "tools/uploader/cli.ts")],
    outfile: bin,
    bundle: true,
    platform: "node",
    target: NODE_TARGET,
    format: "esm",
    // commander, saxes and cli-progress are CommonJS and require() Node's modules; an ES module has no require.
    banner: {
      js: 'import { createRequire as __createRequire } from "node:module";\nconst require = __createRequire(import.meta.url);',
    },
    define: { ANCHORPIPE_UPLOADER_VERSION: JSON.stringify(manifest.version) },
    legalComments: "eof",
    logLevel: "warning",
  });
  const code = await readFile(bin, "utf8");
  const newer = NEWER_THAN_NODE_18.filter(([pattern]) => pattern.test(code)).map(([, what]) => what);
  if (newer.length > 0) throw new Error(`the bundle uses APIs newer than Node 18: ${newer.join(", ")}`);

  await copyFile(path.join(ROOT, "tools/uploader/README.md"), path.join(outDir, "README.md"));
  if (path.resolve(outDir) !== PACKAGE_DIR) await writeFile(path.join(outDir, "package.json"), manifestText);
  return { dir: outDir, bin, name: manifest.name, version: manifest.version, bytes: (await stat(bin)).size };
}

if (import.meta.filename === process.argv[1]) {
  const outDir = process.argv[2] ? path.resolve(process.argv[2]) : PACKAGE_DIR;
  const built = await buildUploaderPackage(outDir);
  console.log(
    `built ${built.name}@${built.version}: ${path.relative(process.cwd(), built.bin)} (${(built.bytes / 1024).toFixed(0)} KiB)\n` +
      // "./": without it npm reads packages/uploader as a GitHub repository.
      `pack it with: npm pack ./${path.relative(process.cwd(), built.dir)}`,
  );
}
