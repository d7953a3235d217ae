import { Command, InvalidArgumentError } from "commander";
import { and, eq } from "drizzle-orm";
import * as schema from "../../src/db/schema/index.ts";
import { REPO_ROLES, type RepoRole } from "../../src/services/permissions.ts";
import { setRole } from "../../src/services/roles.ts";
import { createToken, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS } from "../../src/services/tokens.ts";
import { createUser } from "../../src/services/users.ts";
import type { Backend } from "../gateway/backends.ts";
import { isMain, parseToolArgs, positiveWholeNumber } from "./command.ts";
import { openDatabase } from "./connection.ts";
import { withWorkerDb } from "./create-repo.ts";

/**
 * `npm run user:create -- --login ada [--github-id 583231] [--platform-admin] [--repo acme/api --role admin]`: a person and a
 * personal token, printed once — for first set-up and local use (spec/api.md, "Who is calling"). Made with
 * the Worker's own services over its kind of client, so the rows and audit entries are what the API writes.
 */

export interface CreateUserInput {
  login: string;
  name?: string;
  email?: string;
  /** GitHub's numeric user id: repositories this person adds to the GitHub App get them as admin. */
  githubId?: string;
  platformAdmin?: boolean;
  /** owner/name of an existing repository on which to give the user `role`. */
  repo?: string;
  role?: RepoRole;
  days?: number;
}

export class CreateUserError extends Error {
  override name = "CreateUserError";
}

export async function createUserWithToken(backend: Backend, input: CreateUserInput) {
  return withWorkerDb(backend, async (db) => {
    const ctx = { db, now: () => new Date() };
    let repoId: string | undefined;
    if (input.repo) {
      const [owner, name] = input.repo.split("/");
      const [repo] = await db
        .select({ id: schema.repos.id })
        .from(schema.repos)
        .where(and(eq(schema.repos.owner, owner ?? ""), eq(schema.repos.name, name ?? "")));
      if (!repo) throw new CreateUserError(`no repository ${input.repo} (create it with npm run repo:create)`);
      repoId = repo.id;
    }
    const user = await createUser(ctx, {
      login: input.login,
      name: input.name,
      email: input.email,
      githubId: input.githubId,
      isPlatformAdmin: input.platformAdmin,
    });
    if (repoId) {
      await setRole(
        { ...ctx, actorId: user.id },
        { actorId: user.id, repoId, userId: user.id, role: input.role ?? "admin" },
      );
    }
    const token = await createToken(ctx, { userId: user.id, days: input.days ?? DEFAULT_TOKEN_DAYS });
    return { user, repoId, token: token.token, expires: token.expires };
  });
}

function program(): Command {
  const role = (value: string) => {
    if (!(REPO_ROLES as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`must be one of ${REPO_ROLES.join(", ")}`);
    }
    return value as RepoRole;
  };
  const days = (value: string) => {
    const n = positiveWholeNumber(value);
    if (n > MAX_TOKEN_DAYS) throw new InvalidArgumentError(`must be at most ${MAX_TOKEN_DAYS}`);
    return n;
  };
  const githubId = (value: string) => {
    // GitHub's ids are JSON numbers in its webhooks: the App can only match one that is a safe integer.
    if (!/^[1-9][0-9]{0,15}$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError("must be GitHub's numeric user id");
    }
    return value;
  };
  return new Command("npm run user:create --")
    .description("create a user and print a personal token for them, once")
    .requiredOption("--login <login>", "the user's login (GitHub login)")
    .option("--name <name>", "display name")
    .option("--email <email>", "e-mail address")
    .option(
      "--github-id <id>",
      "GitHub's numeric user id: they administer the repositories they add to the App",
      githubId,
    )
    .option("--platform-admin", "may read the global audit log and use operator endpoints")
    .option("--repo <owner/name>", "an existing repository to give the user a role on")
    .option("--role <role>", `the role on --repo (${REPO_ROLES.join(", ")}; default admin)`, role)
    .option("--days <days>", `token lifetime in days (default ${DEFAULT_TOKEN_DAYS}, at most ${MAX_TOKEN_DAYS})`, days)
    .addHelpText("after", "\nWorks on the embedded dev database, or on DATABASE_URL when it is set.");
}

export function parseCreateUserArgs(argv: string[]): CreateUserInput | number {
  const parsed = parseToolArgs(program(), argv);
  if (typeof parsed === "number") return parsed;
  return parsed.opts<CreateUserInput>();
}

async function main(argv: string[]): Promise<number> {
  const input = parseCreateUserArgs(argv);
  if (typeof input === "number") return input;
  const backend = await openDatabase();
  console.log(`database: ${backend.description}`);
  try {
    const { user, repoId, token, expires } = await createUserWithToken(backend, input);
    console.log(`
user        ${user.login} (${user.id})${user.isPlatformAdmin ? ", platform admin" : ""}
${repoId ? `role        ${input.role ?? "admin"} on ${input.repo}\n` : ""}expires     ${expires.toISOString()}
token       ${token}

⚠  This token is shown ONCE. Use it as: Authorization: Bearer <token>`);
    return 0;
  } catch (error) {
    if (error instanceof CreateUserError) {
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
