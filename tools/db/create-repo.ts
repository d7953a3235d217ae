import { neon, neonConfig } from "@neondatabase/serverless";
import { Command } from "commander";
import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/neon-http";
import type { Db } from "../../src/db/client.ts";
import * as schema from "../../src/db/schema/index.ts";
import { type Keyring, KeyringError, parseKeyring } from "../../src/lib/keyring.ts";
import { createSecret, type SecretInfo } from "../../src/services/secrets.ts";
import type { Backend } from "../gateway/backends.ts";
import { connectionString, generatePassword } from "../gateway/credentials.ts";
import { createGateway } from "../gateway/handler.ts";
import { isMain, parseToolArgs } from "./command.ts";
import { openDatabase } from "./connection.ts";
import { KekError, resolveToolKek } from "./dev-kek.ts";

/**
 * `npm run repo:create -- --owner acme --name api`: makes the repository if it
 * does not exist and gives it a new signing secret, printed once.
 *
 * The secret is made by the Worker's own service code over the Worker's kind
 * of client (drizzle over Neon HTTP), here served by the gateway in-process,
 * so the encryption, the AAD and the audit row are exactly what the API
 * writes.
 */

export class CreateRepoError extends Error {
  override name = "CreateRepoError";
}

export interface CreateRepoInput {
  owner: string;
  name: string;
  /** The secret's name (default "default"). */
  secretName?: string;
}

export interface CreateRepoResult {
  repo: { id: string; owner: string; name: string; created: boolean };
  secret: SecretInfo;
  /** Shown once; not retrievable afterwards. */
  plaintext: string;
}

/** GitHub's characters for owners and repository names. */
const NAME = /^[A-Za-z0-9_.-]{1,100}$/;

/**
 * Runs `work` with a Worker-style drizzle client whose queries go to an
 * in-process gateway over `backend`. The Neon driver's fetch settings are
 * process-global, so they are put back afterwards.
 */
export async function withWorkerDb<T>(backend: Backend, work: (db: Db) => Promise<T>): Promise<T> {
  // An operator's tool: it runs as the backend's own connection user (role null), with a one-off password.
  const user = { name: "create-repo", password: generatePassword(), role: null };
  const gateway = createGateway({ backend, users: [user] });
  const saved = { endpoint: neonConfig.fetchEndpoint, fetchFunction: neonConfig.fetchFunction };
  neonConfig.fetchEndpoint = "http://localhost/sql";
  neonConfig.fetchFunction = (url: string, init: RequestInit) => gateway.handle(new Request(url, init));
  try {
    const client = neon(connectionString(user, "localhost", 5432));
    return await work(drizzle({ client, schema, casing: "snake_case" }));
  } finally {
    neonConfig.fetchEndpoint = saved.endpoint;
    neonConfig.fetchFunction = saved.fetchFunction;
  }
}

/** The repository owner/name, made if missing. */
export async function findOrCreateRepo(db: Db, owner: string, name: string) {
  const { repos } = schema;
  // One transaction: the select sees the row whether this insert or a concurrent one made it.
  const [inserted, [found]] = await db.batch([
    db
      .insert(repos)
      .values({ owner, name })
      .onConflictDoNothing({ target: [repos.owner, repos.name] })
      .returning({ id: repos.id }),
    db
      .select({ id: repos.id, owner: repos.owner, name: repos.name })
      .from(repos)
      .where(and(eq(repos.owner, owner), eq(repos.name, name))),
  ]);
  return { found, created: inserted.length > 0 };
}

/** Finds or creates owner/name (unique), then creates a secret for it. */
export async function createRepoWithSecret(
  backend: Backend,
  keyring: Keyring,
  input: CreateRepoInput,
  now: () => Date = () => new Date(),
): Promise<CreateRepoResult> {
  for (const [what, value] of [
    ["owner", input.owner],
    ["name", input.name],
  ] as const) {
    if (!NAME.test(value)) {
      throw new CreateRepoError(`${what} must be 1–100 letters, digits, "-", "_" or ".", got ${JSON.stringify(value)}`);
    }
  }
  return withWorkerDb(backend, async (db) => {
    const { found, created } = await findOrCreateRepo(db, input.owner, input.name);
    const { secret, plaintext } = await createSecret({ db, now }, keyring, {
      repoId: found.id,
      name: input.secretName,
    });
    return { repo: { ...found, created }, secret, plaintext };
  });
}

function program(): Command {
  return new Command("npm run repo:create --")
    .description("create the repository if it does not exist, give it a new signing secret and print the secret once")
    .usage("--owner <owner> --name <name> [--secret-name <name>]")
    .requiredOption("--owner <owner>", "repository owner")
    .requiredOption("--name <name>", "repository name")
    .option("--secret-name <name>", 'the secret\'s name (default "default")')
    .addHelpText(
      "after",
      `
Works on the embedded dev database, or on DATABASE_URL when it is set (run npm run db:migrate first).
The secret is encrypted under HMAC_KEK; without it, the embedded database uses the dev key in .data/dev-kek,
and a server database is refused (its Worker could not decrypt the secret).`,
    );
}

/** The input on a command line, or the exit code when there is nothing to run (help, usage error). */
export function parseCreateRepoArgs(argv: string[]): CreateRepoInput | number {
  const parsed = parseToolArgs(program(), argv);
  if (typeof parsed === "number") return parsed;
  const { owner, name, secretName } = parsed.opts<{ owner: string; name: string; secretName?: string }>();
  return { owner, name, secretName };
}

async function main(argv: string[]): Promise<number> {
  const input = parseCreateRepoArgs(argv);
  if (typeof input === "number") return input;

  let keyring: Keyring;
  let kekSource: string;
  try {
    const { kek, source } = resolveToolKek();
    keyring = await parseKeyring(kek);
    kekSource = source === "HMAC_KEK" ? "HMAC_KEK" : "the dev key in .data/dev-kek";
  } catch (error) {
    if (error instanceof KekError || error instanceof KeyringError) {
      console.error(`error: ${error.message}`);
      return 1;
    }
    throw error;
  }

  const backend = await openDatabase();
  console.log(`database: ${backend.description}`);
  try {
    const { rows } = await backend.pool.query("SELECT to_regclass('public.hmac_secrets')::text AS found");
    if (rows[0].found === null) {
      console.error("error: the database has no hmac_secrets table: run `npm run db:migrate` first");
      return 1;
    }
    const result = await createRepoWithSecret(backend, keyring, input);
    const { repo, secret, plaintext } = result;
    console.log(`
repository  ${repo.owner}/${repo.name} (${repo.created ? "created" : "already existed"})
repo id     ${repo.id}
key id      ${secret.keyId} (name "${secret.name}", KEK version from ${kekSource})
secret      ${plaintext}

⚠  This secret is shown ONCE and cannot be shown again. Store it now (e.g. as a CI secret);
   if it is lost, create or rotate a secret.

ANCHORPIPE_REPO_ID=${repo.id}
ANCHORPIPE_SECRET=${plaintext}`);
    return 0;
  } catch (error) {
    if (error instanceof CreateRepoError) {
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
