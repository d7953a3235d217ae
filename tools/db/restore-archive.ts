import { readFile } from "node:fs/promises";
import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import type { ArchiveBucket, ArchiveObject } from "../../src/services/retention/manifest.ts";
import { type RestoreCounts, restoreArchivedMonth } from "../../src/services/retention/restore.ts";
import { isMain, parseToolArgs } from "./command.ts";
import { openDatabase } from "./connection.ts";
import { withWorkerDb } from "./create-repo.ts";

/**
 * `npm run archive:restore -- --repo <id> --month YYYY-MM`: puts one archived month of a repository's test runs
 * back into the database (src/services/retention/restore.ts: checksums checked, idempotent, missing ingestions
 * and test cases recreated).
 *
 * The archive is read from the local bucket `wrangler dev` writes to (.wrangler/state, through wrangler's
 * platform proxy on the project's wrangler.toml), or with `--dir` from a folder holding a copy of the bucket's
 * keys (test-runs/<repo>/<month>/…), e.g. downloaded from the production bucket with `wrangler r2 object get`
 * or any S3 client. The database is the dev database, or DATABASE_URL's server (a direct connection, as its
 * login user).
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function repoId(value: string): string {
  if (!UUID.test(value)) throw new InvalidArgumentError("must be a repository id (a UUID)");
  return value.toLowerCase();
}

function month(value: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(value)) throw new InvalidArgumentError("must be a month, YYYY-MM");
  return value;
}

/** A folder laid out like the bucket: key `a/b/c` is the file `<root>/a/b/c`. */
export function directoryBucket(root: string): ArchiveBucket {
  return {
    async get(key: string): Promise<ArchiveObject | null> {
      let bytes: Buffer;
      try {
        bytes = await readFile(path.join(root, ...key.split("/")));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw error;
      }
      const blob = new Blob([new Uint8Array(bytes)]);
      return {
        body: blob.stream(),
        arrayBuffer: () => blob.arrayBuffer(),
        text: () => blob.text(),
      };
    },
    async put() {
      throw new Error("the restore command never writes to the archive");
    },
  };
}

export async function restoreArchive(options: {
  repo: string;
  month: string;
  dir?: string;
  persistTo?: string;
  /** The database's environment (DATABASE_URL); default this process's. */
  env?: NodeJS.ProcessEnv;
}): Promise<RestoreCounts> {
  let dispose = async () => {};
  let bucket: ArchiveBucket;
  if (options.dir) {
    bucket = directoryBucket(options.dir);
  } else {
    const { getPlatformProxy } = await import("wrangler");
    const proxy = await getPlatformProxy<{ ARCHIVE?: ArchiveBucket }>({
      configPath: path.resolve(import.meta.dirname, "../../wrangler.toml"),
      // wrangler dev --persist-to <dir> keeps its state in <dir>/v3, where the proxy wants the path itself.
      persist: options.persistTo ? { path: path.join(options.persistTo, "v3") } : true,
      remoteBindings: false,
    });
    if (!proxy.env.ARCHIVE) throw new Error("wrangler.toml has no ARCHIVE bucket binding");
    bucket = proxy.env.ARCHIVE;
    dispose = () => proxy.dispose();
  }
  const backend = await openDatabase(options.env);
  try {
    return await withWorkerDb(backend, (db) =>
      restoreArchivedMonth({ db, now: () => new Date() }, bucket, { repoId: options.repo, month: options.month }),
    );
  } finally {
    await backend.close();
    await dispose();
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command("archive:restore")
    .description("Restore one archived month of a repository's test runs into the database (idempotent).")
    .requiredOption("--repo <id>", "the repository's id", repoId)
    .requiredOption("--month <YYYY-MM>", "the month (UTC) of the runs' created_at", month)
    .option("--dir <path>", "read the archive from a folder holding the bucket's keys instead of the local bucket")
    .option("--persist-to <path>", "wrangler's local state folder, when `wrangler dev` ran with --persist-to");
  const parsed = parseToolArgs(program, argv);
  if (typeof parsed === "number") return parsed;
  const options = parsed.opts<{ repo: string; month: string; dir?: string; persistTo?: string }>();
  try {
    const counts = await restoreArchive(options);
    console.log(
      `restored ${options.repo} ${options.month}: ${counts.runsRestored} of ${counts.archivedRuns} archived runs inserted ` +
        `(${counts.archivedRuns - counts.runsRestored} already present) from ${counts.parts} parts; ` +
        `${counts.ingestionsRecreated} ingestions and ${counts.testCasesRecreated} test cases recreated`,
    );
    return 0;
  } catch (error) {
    console.error(`archive:restore failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (isMain(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
