import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { buildUploaderPackage } from "../../tools/uploader/build.ts";

const run = promisify(execFile);

export interface InstalledUploader {
  /** The tarball `npm pack` made. */
  tarball: string;
  /** What npm pack put in it. */
  files: string[];
  /** The folder it was installed into: a CI job's workspace, with nothing of this repository. */
  projectDir: string;
  /** node_modules/.bin/anchorpipe there. */
  bin: string;
  /** The installed package's package.json. */
  manifest: Record<string, unknown>;
}

/**
 * Builds the uploader package into `workDir/package`, packs it with npm and installs the tarball into an empty
 * project, offline (the package has no dependencies, so npm needs no registry).
 */
export async function packAndInstall(workDir: string): Promise<InstalledUploader> {
  const built = await buildUploaderPackage(path.join(workDir, "package"));
  const packs = path.join(workDir, "tarballs");
  await mkdir(packs, { recursive: true });
  const { stdout } = await run("npm", ["pack", built.dir, "--pack-destination", packs, "--json"], { cwd: workDir });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const tarball = path.join(packs, packed!.filename);

  const projectDir = path.join(workDir, "ci-job");
  await mkdir(projectDir, { recursive: true });
  await writeFile(path.join(projectDir, "package.json"), JSON.stringify({ name: "ci-job", private: true }));
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball], { cwd: projectDir });
  const manifest = JSON.parse(
    await readFile(path.join(projectDir, "node_modules", built.name, "package.json"), "utf8"),
  ) as Record<string, unknown>;
  return {
    tarball,
    files: packed!.files.map((f) => f.path).sort(),
    projectDir,
    bin: path.join(projectDir, "node_modules/.bin/anchorpipe"),
    manifest,
  };
}

/**
 * The Node binaries to run the installed package with, one per version: this one, the first `node` on the
 * PATH outside node_modules/.bin (the machine's own, older than the pinned one here), and any listed in
 * ANCHORPIPE_TEST_NODES (e.g. a Node 18 binary).
 */
export async function nodeBinaries(): Promise<Array<{ node: string; version: string }>> {
  const candidates = [process.execPath];
  const system = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => dir && !dir.includes(`node_modules${path.sep}.bin`))
    .map((dir) => path.join(dir, "node"))
    .find((file) => existsSync(file));
  if (system) candidates.push(system);
  candidates.push(...(process.env.ANCHORPIPE_TEST_NODES ?? "").split(path.delimiter).filter(Boolean));
  const found = new Map<string, string>();
  for (const node of candidates) {
    const version = (await run(node, ["--version"])).stdout.trim();
    if (!found.has(version)) found.set(version, node);
  }
  return [...found].map(([version, node]) => ({ node, version }));
}
