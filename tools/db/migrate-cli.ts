import { parseArgs } from "node:util";
import { openDatabase } from "./connection.ts";
import { MigrationError, migrateDown, migrateUp, migrationStatus } from "./migrator.ts";

const USAGE = `usage:
  npm run db:migrate                      apply pending migrations
  npm run db:rollback [-- --steps N]      undo the last N migrations (default 1)
  npm run db:rollback -- --to <tag>       undo every migration after <tag> ("0" undoes all)
  npm run db:status                       applied, pending, and whether down scripts exist
Works on the embedded dev database, or on DATABASE_URL when it is set.`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { steps: { type: "string" }, to: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const command = positionals[0];
  if (values.help || !["up", "down", "status"].includes(command ?? "")) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const steps = values.steps === undefined ? 1 : Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) {
    console.error("--steps must be a positive whole number");
    return 2;
  }

  const backend = await openDatabase();
  console.log(`database: ${backend.description}`);
  try {
    if (command === "up") {
      const done = await migrateUp(backend.pool);
      console.log(done.length ? done.map((t) => `applied  ${t}`).join("\n") : "nothing to apply: up to date");
    } else if (command === "down") {
      const undone = await migrateDown(backend.pool, values.to !== undefined ? { to: values.to } : { steps });
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

process.exitCode = await main();
