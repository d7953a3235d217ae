import type { Keyring } from "../../src/lib/keyring.ts";
import { activeSigningSecrets, createSecret } from "../../src/services/secrets.ts";
import type { Backend } from "../gateway/backends.ts";
import { findOrCreateRepo, withWorkerDb } from "./create-repo.ts";

export const DEMO_REPO = { owner: "anchorpipe", name: "demo" } as const;

export interface DemoRepo {
  id: string;
  owner: string;
  name: string;
  /** The demo repository's signing secret (local development only, so it is shown every time). */
  secret: string;
}

/** Creates the demo repository and its secret on first run; later runs find the same ones. */
export async function ensureDemoRepo(backend: Backend, keyring: Keyring): Promise<DemoRepo> {
  return withWorkerDb(backend, async (db) => {
    const ctx = { db, now: () => new Date() };
    const { found } = await findOrCreateRepo(db, DEMO_REPO.owner, DEMO_REPO.name);
    const [existing] = await activeSigningSecrets(ctx, keyring, found.id);
    const secret = existing?.secret ?? (await createSecret(ctx, keyring, { repoId: found.id, name: "demo" })).plaintext;
    return { ...found, secret };
  });
}
