import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import type { Db } from "../../src/db/client.ts";
import { type Bindings, envSchema } from "../../src/env.ts";
import { findJob, JOBS, type JobRunReport, runJob, SCHEDULE } from "../../src/jobs/index.ts";
import { isMain, parseToolArgs } from "../db/command.ts";
import { openDatabase } from "../db/connection.ts";
import { withWorkerDb } from "../db/create-repo.ts";
import type { Backend } from "../gateway/backends.ts";

/**
 * `npm run job -- <name> [--at ISO]`: runs one scheduled job by hand, the Worker's own code (src/jobs) through
 * the same runner as the Cron Trigger — the lease, the job_runs row, the JSON log line — against the dev
 * database (or DATABASE_URL's server, as its login user), over a Worker-style client served in-process.
 *
 * `--at` is the run's scheduled time, its cut-off for everything time-based (default: now). A time whose run
 * already succeeded is refused by the ledger (recorded as skipped); a failed or skipped one runs again.
 * Bindings (the ARCHIVE bucket) come from wrangler's local platform proxy on wrangler.toml, the same local
 * state `wrangler dev` uses; `--no-bindings` runs without them (a job that needs one then reports skipped).
 */

function isoTime(value: string): Date {
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError("must be an ISO 8601 time, e.g. 2026-12-01T03:17:00Z");
  }
  return date;
}

/** What `--list` prints: every job and the crons that run it. */
export function describeJobs(): string {
  const lines = JOBS.map((job) => {
    const crons = Object.entries(SCHEDULE)
      .filter(([, jobs]) => jobs.includes(job))
      .map(([cron]) => `"${cron}"`);
    return `${job.name.padEnd(28)} ${crons.join(", ")}`;
  });
  return [`${"job".padEnd(28)} cron (UTC)`, ...lines].join("\n");
}

export class UnknownJobError extends Error {
  override name = "UnknownJobError";
}

/** Runs the named job at `at` on `backend` with `bindings`; the run's report (also logged as `job.run`). */
export async function runJobByHand(options: {
  name: string;
  at: Date;
  backend: Backend;
  bindings?: Partial<Bindings>;
}): Promise<JobRunReport> {
  const job = findJob(options.name);
  if (!job) throw new UnknownJobError(`no job named "${options.name}" (npm run job -- --list)`);
  const bindings = { ENVIRONMENT: "development", ...options.bindings } as Bindings;
  // The Worker's configuration as the dev Worker has it; the database is the tool's own client below.
  const config = envSchema.parse({ ENVIRONMENT: bindings.ENVIRONMENT });
  return withWorkerDb(options.backend, (db: Db) =>
    runJob(job, { config, env: bindings, db, scheduledTime: options.at }, { trigger: "manual" }),
  );
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command("job")
    .description("Run a scheduled job by hand against the dev database (recorded in job_runs).")
    .argument("[name]", "the job (see --list)")
    .option(
      "--at <ISO time>",
      "the scheduled time: the run's cut-off for everything time-based (default: now)",
      isoTime,
    )
    .option("--list", "list the jobs and their crons")
    .option("--no-bindings", "run without wrangler's local bindings (the ARCHIVE bucket)")
    .option("--persist-to <path>", "wrangler's local state folder, when `wrangler dev` ran with --persist-to");
  const parsed = parseToolArgs(program, argv);
  if (typeof parsed === "number") return parsed;
  const options = parsed.opts<{ at?: Date; list?: boolean; bindings: boolean; persistTo?: string }>();
  const [name] = parsed.args;
  if (options.list) {
    console.log(describeJobs());
    return 0;
  }
  if (!name) {
    console.error("job: name a job to run, or --list");
    return 2;
  }
  if (!findJob(name)) {
    console.error(`job: no job named "${name}"\n\n${describeJobs()}`);
    return 2;
  }

  let dispose = async () => {};
  let bindings: Partial<Bindings> = {};
  if (options.bindings) {
    const { getPlatformProxy } = await import("wrangler");
    const proxy = await getPlatformProxy<Bindings>({
      configPath: path.resolve(import.meta.dirname, "../../wrangler.toml"),
      persist: options.persistTo ? { path: options.persistTo } : true,
      remoteBindings: false,
    });
    // Only the bindings (buckets and the like): the database is the tool's own, never .dev.vars' secrets.
    bindings = Object.fromEntries(Object.entries(proxy.env).filter(([, value]) => typeof value === "object"));
    dispose = () => proxy.dispose();
  }
  const backend = await openDatabase();
  try {
    const report = await runJobByHand({ name, at: options.at ?? new Date(), backend, bindings });
    const what = report.counts ? ` ${JSON.stringify(report.counts)}` : "";
    const why = report.note ? ` (${report.note})` : "";
    console.error(`${report.job}: ${report.outcome} in ${report.ms} ms${what}${why}`);
    return report.outcome === "failed" ? 1 : 0;
  } catch (error) {
    console.error(`job failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await backend.close();
    await dispose();
  }
}

if (isMain(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
