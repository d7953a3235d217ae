import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { envSchema } from "../../src/env.ts";
import { generateKek } from "../../src/lib/keyring.ts";

/**
 * The development key-encryption key: made on first use and kept next to the
 * embedded database (.data is git-ignored), so `npm run dev`, which hands it
 * to the Worker as HMAC_KEK, and `npm run repo:create` encrypt and decrypt
 * with the same key. Never used for a server database: there HMAC_KEK must
 * be given explicitly.
 */
export const DEV_KEK_FILE = path.resolve(import.meta.dirname, "../../.data/dev-kek");

/** The Worker's own check of HMAC_KEK, so the dev KEK is always one it accepts. */
const isKek = (text: string) => envSchema.shape.HMAC_KEK.safeParse(text).success;

export class KekError extends Error {
  override name = "KekError";
}

/** Reads the dev KEK, creating it (mode 600) when absent. */
export function loadDevKek(file = DEV_KEK_FILE): string {
  const existing = readKek(file);
  if (existing !== null) return existing;
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    // "wx": if another process created it meanwhile, keep theirs.
    writeFileSync(file, `${generateKek()}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const created = readKek(file);
  if (created === null) throw new KekError(`could not create ${file}`);
  return created;
}

function readKek(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  if (!isKek(text)) {
    throw new KekError(`${file} is not a KEK (<version>:<base64 32-byte key>); delete it to make a new one`);
  }
  return text;
}

/**
 * The KEK a Node tool should use: HMAC_KEK when set; else, for the embedded
 * dev database (no DATABASE_URL), the dev KEK; else an error, because a
 * server's secrets must be encrypted under the key its Worker has.
 */
export function resolveToolKek(
  env: NodeJS.ProcessEnv = process.env,
  file = DEV_KEK_FILE,
): { kek: string; source: "HMAC_KEK" | "dev-kek" } {
  if (env.HMAC_KEK) return { kek: env.HMAC_KEK, source: "HMAC_KEK" };
  if (!env.DATABASE_URL) return { kek: loadDevKek(file), source: "dev-kek" };
  throw new KekError(
    "HMAC_KEK is not set. With DATABASE_URL the secret must be encrypted under the same key-encryption key the " +
      "Worker has: set HMAC_KEK to that value (<version>:<base64 32-byte key>[,…]).",
  );
}
