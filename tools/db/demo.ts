import { eq } from "drizzle-orm";
import { users } from "../../src/db/schema/index.ts";
import type { Keyring } from "../../src/lib/keyring.ts";
import { setRole } from "../../src/services/roles.ts";
import { activeSigningSecrets, createSecret } from "../../src/services/secrets.ts";
import { createToken } from "../../src/services/tokens.ts";
import { createUser } from "../../src/services/users.ts";
import type { Backend } from "../gateway/backends.ts";
import { findOrCreateRepo, withWorkerDb } from "./create-repo.ts";

export const DEMO_REPO = { owner: "anchorpipe", name: "demo" } as const;
/** The demo repository's admin, also a platform admin, for trying the API locally. */
export const DEMO_ADMIN = "demo-admin";

export interface DemoRepo {
  id: string;
  owner: string;
  name: string;
  /** The demo repository's signing secret (local development only, so it is shown every time). */
  secret: string;
  /** A new personal token of the demo admin, made at every start (only its hash is stored). */
  adminToken: string;
}

/** Creates the demo repository and its secret on first run; later runs find the same ones. */
export async function ensureDemoRepo(backend: Backend, keyring: Keyring): Promise<DemoRepo> {
  return withWorkerDb(backend, async (db) => {
    const ctx = { db, now: () => new Date() };
    const { found } = await findOrCreateRepo(db, DEMO_REPO.owner, DEMO_REPO.name);
    const [existing] = await activeSigningSecrets(ctx, keyring, found.id);
    const secret = existing?.secret ?? (await createSecret(ctx, keyring, { repoId: found.id, name: "demo" })).plaintext;
    const [admin] = await db.select({ id: users.id }).from(users).where(eq(users.githubLogin, DEMO_ADMIN));
    const adminId =
      admin?.id ?? (await createUser(ctx, { login: DEMO_ADMIN, name: "Demo Admin", isPlatformAdmin: true })).id;
    await setRole(ctx, { actorId: adminId, repoId: found.id, userId: adminId, role: "admin" });
    const { token } = await createToken(ctx, { userId: adminId, days: 30, label: "npm run dev" });
    return { ...found, secret, adminToken: token };
  });
}
