import { Argument, Command } from "commander";
import { isMain, parseToolArgs, positiveWholeNumber } from "./command.ts";
import { openDatabase } from "./connection.ts";
import { MigrationError, migrateDown, migrateUp, migrationStatus } from "./migrator.ts";

/** `npm run db:migrate`, `db:rollback`, `db:status`: one program, the action as its argument. */

const ACTIONS = ["up", "down", "status"] as const;

export interface MigrateRequest {
  action: (typeof ACTIONS)[number];
  /** For down: how many migrations to undo (default 1). */
  steps: number;
  /** For down: undo every migration after this tag ("0" undoes all); wins over steps. */
  to?: string;
}

function program(): Command {
  return new Command("tsx tools/db/migrate-cli.ts")
    .description("apply, roll back or list the migrations in drizzle/")
    .usage("<up|down|status> [--steps N | --to <tag>]")
    .addArgument(new Argument("<action>", "up, down or status").choices(ACTIONS))
    .option("--steps <n>", "down: undo the last N migrations", positiveWholeNumber, 1)
    .option("--to <tag>", 'down: undo every migration after <tag> ("0" undoes all)')
    .addHelpText(
      "after",
      `
  npm run db:migrate                      apply pending migrations
  npm run db:rollback [-- --steps N]      undo the last N migrations (default 1)
  npm run db:rollback -- --to <tag>       undo every migration after <tag> ("0" undoes all)
  npm run db:status                       applied, pending, and whether down scripts exist
Works on the embedded dev database, or on DATABASE_URL when it is set.`,
    );
}

/** The request on a command line, or the exit code when there is nothing to run (help, usage error). */
export function parseMigrateArgs(argv: string[]): MigrateRequest | number {
  const parsed = parseToolArgs(program(), argv);
  if (typeof parsed === "number") return parsed;
  const [action] = parsed.processedArgs as [MigrateRequest["action"]];
  const { steps, to } = parsed.opts<{ steps: number; to?: string }>();
  return { action, steps, to };
}

async function main(argv: string[]): Promise<number> {
  const request = parseMigrateArgs(argv);
  if (typeof request === "number") return request;

  const backend = await openDatabase();
  console.log(`database: ${backend.description}`);
  try {
    if (request.action === "up") {
      const done = await migrateUp(backend.pool);
      console.log(done.length ? done.map((t) => `applied  ${t}`).join("\n") : "nothing to apply: up to date");
    } else if (request.action === "down") {
      const target = request.to !== undefined ? { to: request.to } : { steps: request.steps };
      const undone = await migrateDown(backend.pool, target);
      console.log(undone.length ? undone.map((t) => `reverted ${t}`).join("\n") : "nothing to roll back");
    } else {
      for (const m of await migrationStatus(backend.pool)) {
        console.log(
          `${m.state.padEnd(8)} ${m.tag.padEnd(40)} ${m.hasDown ? "down: yes" : "down: MISSING"}  ${m.appliedAt ?? ""}`,
        );
      }
    }
    return 0;
  } catch (error) {
    if (error instanceof MigrationError) {
      console.error(`error: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    await backend.close();
  }
}

if (isMain(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
