import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envSchema } from "../../src/env.ts";
import { bytesToBase64, base64ToBytes as decodeBase64 } from "../../src/lib/encoding.ts";
import {
  DecryptError,
  decrypt,
  encrypt,
  generateKek,
  type Keyring,
  KeyringError,
  parseKeyring,
} from "../../src/lib/keyring.ts";
import type { ServiceContext } from "../../src/services/context.ts";

/** Base64 that must be valid: the test fails loudly otherwise. */
function base64ToBytes(value: string): Uint8Array {
  const bytes = decodeBase64(value, { padding: "optional" });
  if (!bytes) throw new TypeError(`not base64: ${value}`);
  return bytes;
}

import {
  activeSigningSecrets,
  createSecret,
  hmacSecretAad,
  listSecrets,
  RepoNotFoundError,
  revokeSecret,
  rotateSecret,
  SecretNotFoundError,
} from "../../src/services/secrets.ts";
import { CreateRepoError, createRepoWithSecret } from "../../tools/db/create-repo.ts";
import { KekError, loadDevKek, resolveToolKek } from "../../tools/db/dev-kek.ts";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase, workerDb } from "./db-support.ts";
import { uniqueName } from "./support.ts";

/**
 * (The direct pool returns every value as PostgreSQL's text.)
 *
 * HMAC secrets: the keyring (AES-256-GCM envelope encryption) on its own, then
 * the secrets service through the Worker's kind of client (drizzle over Neon
 * HTTP via the gateway) on this run's backend, then the repo:create tool.
 */

let database: TestDatabase;
let db: ReturnType<typeof workerDb>;
let keyring: Keyring;
const KEK_V1 = generateKek(1);
const KEK_V2 = generateKek(2);

const query = async (text: string, values: unknown[] = []) => (await database.backend.pool.query(text, values)).rows;

const T0 = new Date("2031-03-01T12:00:00.000Z");
const at = (ms: number) => new Date(T0.getTime() + ms);
const HOUR = 3_600_000;

/** A service context whose clock the test moves. */
function context(start = T0) {
  const clock = { now: start };
  const ctx: ServiceContext = { db, now: () => clock.now, requestId: "req_test" };
  return { ctx, clock };
}

async function newRepo(): Promise<string> {
  const [row] = await query("insert into repos (owner, name) values ('acme', $1) returning id", [uniqueName("repo")]);
  return row.id;
}

const counts = async (repoId: string) => {
  const [row] = await query(
    `select (select count(*)::int from hmac_secrets where repo_id = $1) as secrets,
            (select count(*)::int from audit_logs where subject_id = $1::text) as audits,
            (select count(*)::int from hmac_secrets where repo_id = $1 and revoked) as revoked`,
    [repoId],
  );
  return { secrets: Number(row.secrets), audits: Number(row.audits), revoked: Number(row.revoked) };
};

const SECRET_INFO_KEYS = [
  "active",
  "createdAt",
  "expiresAt",
  "id",
  "keyId",
  "lastUsedAt",
  "name",
  "revoked",
  "revokedAt",
  "rotatedFrom",
];

beforeAll(async () => {
  database = await migratedDatabase();
  db = workerDb(database);
  keyring = await parseKeyring(KEK_V1);
});
afterAll(() => database.drop());

describe("keyring", () => {
  const repoId = crypto.randomUUID();
  const secretId = crypto.randomUUID();
  const aad = hmacSecretAad(repoId, secretId);

  it("binds exactly hmac_secret:<repo id>:<secret id>", () => {
    expect(aad).toBe(`hmac_secret:${repoId}:${secretId}`);
  });

  it("round-trips, as base64 of a 12-byte IV, the ciphertext and a 16-byte tag, with a fresh IV each time", async () => {
    const plaintext = "whsec_héllo wörld";
    const a = await encrypt(keyring, plaintext, aad);
    const b = await encrypt(keyring, plaintext, aad);
    expect(a.kekVersion).toBe(1);
    expect(await decrypt(keyring, a.ciphertext, a.kekVersion, aad)).toBe(plaintext);
    expect(base64ToBytes(a.ciphertext).length).toBe(12 + new TextEncoder().encode(plaintext).length + 16);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(base64ToBytes(a.ciphertext).subarray(0, 12)).not.toEqual(base64ToBytes(b.ciphertext).subarray(0, 12));
  });

  it("fails to decrypt under another repo id or another secret id", async () => {
    const { ciphertext, kekVersion } = await encrypt(keyring, "whsec_x", aad);
    for (const other of [hmacSecretAad(crypto.randomUUID(), secretId), hmacSecretAad(repoId, crypto.randomUUID())]) {
      const error = await decrypt(keyring, ciphertext, kekVersion, other).catch((e) => e);
      expect(error).toBeInstanceOf(DecryptError);
      expect(error.reason).toBe("authentication_failed");
    }
  });

  it("fails on an altered ciphertext, a malformed one, and under another key", async () => {
    const { ciphertext, kekVersion } = await encrypt(keyring, "whsec_x", aad);
    const bytes = base64ToBytes(ciphertext);
    bytes[bytes.length - 1] ^= 1;
    await expect(decrypt(keyring, bytesToBase64(bytes), kekVersion, aad)).rejects.toMatchObject({
      reason: "authentication_failed",
    });
    await expect(decrypt(keyring, "not base64!", kekVersion, aad)).rejects.toMatchObject({
      reason: "malformed_ciphertext",
    });
    await expect(decrypt(keyring, bytesToBase64(new Uint8Array(20)), kekVersion, aad)).rejects.toMatchObject({
      reason: "malformed_ciphertext",
    });
    const otherKey = await parseKeyring(generateKek(1));
    await expect(decrypt(otherKey, ciphertext, kekVersion, aad)).rejects.toMatchObject({
      reason: "authentication_failed",
    });
  });

  it("names an unknown KEK version", async () => {
    const { ciphertext } = await encrypt(keyring, "whsec_x", aad);
    const error = await decrypt(keyring, ciphertext, 7, aad).catch((e) => e);
    expect(error).toBeInstanceOf(DecryptError);
    expect(error.reason).toBe("unknown_kek_version");
    expect(error.message).toMatch(/KEK version 7/);
  });

  it("KEK rotation: 2:…,1:… decrypts version 1 rows and encrypts new rows under version 2", async () => {
    const old = await encrypt(keyring, "whsec_old", aad);
    const rotated = await parseKeyring(`${KEK_V2},${KEK_V1}`);
    expect(rotated.currentVersion).toBe(2);
    expect(rotated.versions).toEqual([2, 1]);
    expect(await decrypt(rotated, old.ciphertext, 1, aad)).toBe("whsec_old");
    const fresh = await encrypt(rotated, "whsec_new", aad);
    expect(fresh.kekVersion).toBe(2);
    expect(await decrypt(rotated, fresh.ciphertext, 2, aad)).toBe("whsec_new");
    // The highest version encrypts whatever the order.
    expect((await encrypt(await parseKeyring(`${KEK_V1},${KEK_V2}`), "x", aad)).kekVersion).toBe(2);
    // Once version 1 is dropped, its rows no longer decrypt.
    await expect(decrypt(await parseKeyring(KEK_V2), old.ciphertext, 1, aad)).rejects.toMatchObject({
      reason: "unknown_kek_version",
    });
  });

  it("rejects malformed HMAC_KEK values without echoing the key", async () => {
    const short = `1:${bytesToBase64(new Uint8Array(16))}`;
    for (const bad of [
      "",
      " , ",
      "abc",
      short,
      `1:${"*".repeat(44)}`,
      `${KEK_V1},${KEK_V1}`,
      `40000:${KEK_V1.slice(2)}`,
    ]) {
      const error = await parseKeyring(bad).catch((e) => e);
      expect(error, bad).toBeInstanceOf(KeyringError);
      expect(error.message).not.toContain(KEK_V1.slice(2));
    }
  });

  it("generateKek makes values the Worker's env schema accepts", () => {
    const kek = generateKek();
    expect(kek).toMatch(/^1:/);
    expect(base64ToBytes(kek.slice(2)).length).toBe(32);
    expect(envSchema.safeParse({ HMAC_KEK: `${generateKek(3)},${kek}` }).success).toBe(true);
  });
});

describe("secrets service", () => {
  it("creates a whsec_ secret of 32 random bytes, stored encrypted and hashed", async () => {
    const repoId = await newRepo();
    const { ctx } = context();
    const { secret, plaintext } = await createSecret(ctx, keyring, { repoId, name: "ci" });

    expect(plaintext).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const key = plaintext.slice("whsec_".length);
    expect(base64ToBytes(key).length).toBe(32);
    expect(secret).toMatchObject({ name: "ci", active: true, revoked: false, rotatedFrom: null, expiresAt: null });
    expect(secret.keyId).toMatch(/^key_[0-9a-f]{8}$/);
    expect(secret.createdAt).toEqual(T0);

    const [row] = await query("select * from hmac_secrets where id = $1", [secret.id]);
    expect(row.repo_id).toBe(repoId);
    expect(row.kek_version).toBe("1");
    expect(row.secret_ciphertext).not.toContain(plaintext);
    expect(row.secret_ciphertext).not.toContain(key);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(plaintext));
    expect(row.secret_sha256).toBe(Buffer.from(digest).toString("hex"));
    // The exact AAD the ingestion side will rebuild.
    expect(await decrypt(keyring, row.secret_ciphertext, 1, `hmac_secret:${repoId}:${secret.id}`)).toBe(plaintext);

    const second = await createSecret(ctx, keyring, { repoId });
    expect(second.plaintext).not.toBe(plaintext);
    expect(second.secret.name).toBe("default");
  });

  it("lists metadata only, newest first", async () => {
    const repoId = await newRepo();
    const { ctx, clock } = context();
    const first = await createSecret(ctx, keyring, { repoId, name: "one" });
    clock.now = at(1000);
    const second = await createSecret(ctx, keyring, { repoId, name: "two", expiresAt: at(HOUR) });

    const list = await listSecrets(ctx, repoId);
    expect(list.map((s) => s.id)).toEqual([second.secret.id, first.secret.id]);
    for (const info of list) expect(Object.keys(info).sort()).toEqual(SECRET_INFO_KEYS);
    expect(Object.keys(first.secret).sort()).toEqual(SECRET_INFO_KEYS);
    const json = JSON.stringify(list);
    for (const { plaintext } of [first, second]) {
      expect(json).not.toContain(plaintext);
      expect(json).not.toContain(plaintext.slice(6));
    }
    expect(json).not.toMatch(/ciphertext|sha256/i);
    expect(list[0].expiresAt).toEqual(at(HOUR));
    expect(await listSecrets(ctx, await newRepo())).toEqual([]);
    expect(await listSecrets(ctx, "not-a-uuid")).toEqual([]);
  });

  it("audits create, rotate and revoke, with ids and names but never the secret", async () => {
    const repoId = await newRepo();
    const actor = await query("insert into users (github_login) values ('octo') returning id");
    const { ctx, clock } = context();
    ctx.actorId = actor[0].id;
    const created = await createSecret(ctx, keyring, { repoId, name: "ci" });
    clock.now = at(1000);
    const rotated = await rotateSecret(ctx, keyring, { repoId, secretId: created.secret.id, overlapHours: 2 });
    clock.now = at(2000);
    await revokeSecret(ctx, { repoId, secretId: created.secret.id });

    const audits = await query("select * from audit_logs where subject_id = $1 order by created_at", [repoId]);
    expect(audits.map((a) => [a.action, a.subject, a.actor_id, a.request_id])).toEqual([
      ["hmac_secret_created", "repo", ctx.actorId, "req_test"],
      ["hmac_secret_rotated", "repo", ctx.actorId, "req_test"],
      ["hmac_secret_revoked", "repo", ctx.actorId, "req_test"],
    ]);
    const metadata = audits.map((a) => JSON.parse(a.metadata));
    expect(metadata[0]).toEqual({ secretId: created.secret.id, keyId: created.secret.keyId, name: "ci" });
    expect(metadata[1]).toEqual({
      secretId: rotated.secret.id,
      keyId: rotated.secret.keyId,
      name: "ci",
      rotatedFrom: created.secret.id,
      previousKeyId: created.secret.keyId,
      previousExpiresAt: at(1000 + 2 * HOUR).toISOString(),
      overlapHours: 2,
    });
    expect(metadata[2]).toEqual({ secretId: created.secret.id, keyId: created.secret.keyId, name: "ci" });

    const rows = await query("select secret_ciphertext, secret_sha256 from hmac_secrets where repo_id = $1", [repoId]);
    const json = JSON.stringify(audits);
    for (const { plaintext } of [created, rotated]) {
      expect(json).not.toContain(plaintext);
      expect(json).not.toContain(plaintext.slice("whsec_".length));
    }
    for (const row of rows) {
      expect(json).not.toContain(row.secret_ciphertext);
      expect(json).not.toContain(row.secret_sha256);
    }
  });

  it("rotation keeps the old secret valid for the overlap, then only the new one", async () => {
    const repoId = await newRepo();
    const { ctx, clock } = context();
    const old = await createSecret(ctx, keyring, { repoId });
    clock.now = at(60_000);
    const fresh = await rotateSecret(ctx, keyring, { repoId, secretId: old.secret.id });
    expect(fresh.secret).toMatchObject({ rotatedFrom: old.secret.id, name: "default", active: true, expiresAt: null });
    expect(fresh.plaintext).not.toBe(old.plaintext);

    const both = [
      { id: fresh.secret.id, keyId: fresh.secret.keyId, secret: fresh.plaintext },
      { id: old.secret.id, keyId: old.secret.keyId, secret: old.plaintext },
    ];
    expect(await activeSigningSecrets(ctx, keyring, repoId)).toEqual(both);
    const overlapEnd = at(60_000 + 24 * HOUR);
    const [oldInfo] = (await listSecrets(ctx, repoId)).filter((s) => s.id === old.secret.id);
    expect(oldInfo).toMatchObject({ active: true, revoked: false, expiresAt: overlapEnd });

    clock.now = new Date(overlapEnd.getTime() - 1);
    expect(await activeSigningSecrets(ctx, keyring, repoId)).toEqual(both);
    clock.now = overlapEnd;
    expect(await activeSigningSecrets(ctx, keyring, repoId)).toEqual([both[0]]);
  });

  it("rotation does not extend an old secret that already expires sooner; overlap 0 ends it now", async () => {
    const repoId = await newRepo();
    const { ctx } = context();
    const soon = await createSecret(ctx, keyring, { repoId, expiresAt: at(HOUR) });
    await rotateSecret(ctx, keyring, { repoId, secretId: soon.secret.id, overlapHours: 24 });
    const other = await createSecret(ctx, keyring, { repoId });
    const replacement = await rotateSecret(ctx, keyring, { repoId, secretId: other.secret.id, overlapHours: 0 });
    const byId = new Map((await listSecrets(ctx, repoId)).map((s) => [s.id, s]));
    expect(byId.get(soon.secret.id)?.expiresAt).toEqual(at(HOUR));
    expect(byId.get(other.secret.id)?.expiresAt).toEqual(T0);
    const active = (await activeSigningSecrets(ctx, keyring, repoId)).map((s) => s.id);
    expect(active).toContain(replacement.secret.id);
    expect(active).toContain(soon.secret.id);
    expect(active).not.toContain(other.secret.id);
    await expect(rotateSecret(ctx, keyring, { repoId, secretId: other.secret.id, overlapHours: -1 })).rejects.toThrow(
      RangeError,
    );
  });

  it("a revoked secret is excluded at once and shown as revoked", async () => {
    const repoId = await newRepo();
    const { ctx, clock } = context();
    const kept = await createSecret(ctx, keyring, { repoId });
    const gone = await createSecret(ctx, keyring, { repoId });
    clock.now = at(5000);
    const revoked = await revokeSecret(ctx, { repoId, secretId: gone.secret.id });
    expect(revoked).toMatchObject({ id: gone.secret.id, revoked: true, active: false, revokedAt: at(5000) });
    expect((await activeSigningSecrets(ctx, keyring, repoId)).map((s) => s.id)).toEqual([kept.secret.id]);
  });

  it("an expired secret is excluded; one expiring later is included until then", async () => {
    const repoId = await newRepo();
    const { ctx, clock } = context();
    await createSecret(ctx, keyring, { repoId, expiresAt: at(-1) });
    const later = await createSecret(ctx, keyring, { repoId, expiresAt: at(HOUR) });
    expect((await activeSigningSecrets(ctx, keyring, repoId)).map((s) => s.id)).toEqual([later.secret.id]);
    clock.now = at(HOUR);
    expect(await activeSigningSecrets(ctx, keyring, repoId)).toEqual([]);
  });

  it("rotating or revoking an unknown, revoked or other repo's secret throws SecretNotFoundError and writes nothing", async () => {
    const repoId = await newRepo();
    const otherRepo = await newRepo();
    const { ctx } = context();
    const revoked = await createSecret(ctx, keyring, { repoId });
    await revokeSecret(ctx, { repoId, secretId: revoked.secret.id });
    const foreign = await createSecret(ctx, keyring, { repoId: otherRepo });
    const before = [await counts(repoId), await counts(otherRepo)];

    for (const secretId of [crypto.randomUUID(), "not-a-uuid", revoked.secret.id, foreign.secret.id]) {
      await expect(rotateSecret(ctx, keyring, { repoId, secretId })).rejects.toThrow(SecretNotFoundError);
      await expect(revokeSecret(ctx, { repoId, secretId })).rejects.toThrow(SecretNotFoundError);
    }
    await expect(revokeSecret(ctx, { repoId: "nope", secretId: foreign.secret.id })).rejects.toThrow(
      SecretNotFoundError,
    );
    expect([await counts(repoId), await counts(otherRepo)]).toEqual(before);
    expect(await activeSigningSecrets(ctx, keyring, otherRepo)).toHaveLength(1);
  });

  it("creating a secret for an unknown repo throws RepoNotFoundError and writes nothing", async () => {
    const { ctx } = context();
    const missing = crypto.randomUUID();
    await expect(createSecret(ctx, keyring, { repoId: missing })).rejects.toThrow(RepoNotFoundError);
    await expect(createSecret(ctx, keyring, { repoId: "not-a-uuid" })).rejects.toThrow(RepoNotFoundError);
    expect(await counts(missing)).toEqual({ secrets: 0, audits: 0, revoked: 0 });
  });

  it("a row copied to another repo or id does not decrypt", async () => {
    const repoId = await newRepo();
    const thief = await newRepo();
    const { ctx } = context();
    const { secret } = await createSecret(ctx, keyring, { repoId });
    await query(
      `insert into hmac_secrets (repo_id, name, key_id, secret_ciphertext, kek_version, secret_sha256)
       select $2, name, key_id, secret_ciphertext, kek_version, secret_sha256 from hmac_secrets where id = $1`,
      [secret.id, thief],
    );
    await expect(activeSigningSecrets(ctx, keyring, thief)).rejects.toMatchObject({ reason: "authentication_failed" });
    await query(
      `insert into hmac_secrets (repo_id, name, key_id, secret_ciphertext, kek_version, secret_sha256)
       select repo_id, name, key_id, secret_ciphertext, kek_version, secret_sha256 from hmac_secrets where id = $1`,
      [secret.id],
    );
    await expect(activeSigningSecrets(ctx, keyring, repoId)).rejects.toThrow(DecryptError);
  });

  it("after a KEK rotation, old rows still decrypt and new rows use the new version", async () => {
    const repoId = await newRepo();
    const { ctx, clock } = context();
    const v1 = await createSecret(ctx, keyring, { repoId });
    const rotatedKeyring = await parseKeyring(`${KEK_V2},${KEK_V1}`);
    clock.now = at(1000);
    const v2 = await createSecret(ctx, rotatedKeyring, { repoId });
    const versions = await query("select id, kek_version from hmac_secrets where repo_id = $1", [repoId]);
    expect(Object.fromEntries(versions.map((r) => [r.id, Number(r.kek_version)]))).toEqual({
      [v1.secret.id]: 1,
      [v2.secret.id]: 2,
    });
    expect((await activeSigningSecrets(ctx, rotatedKeyring, repoId)).map((s) => s.secret)).toEqual([
      v2.plaintext,
      v1.plaintext,
    ]);
    await expect(activeSigningSecrets(ctx, keyring, repoId)).rejects.toMatchObject({ reason: "unknown_kek_version" });
  });
});

describe("repo:create", () => {
  it("creates the repo once and a new secret each time, through the same service code", async () => {
    const name = uniqueName("api");
    const first = await createRepoWithSecret(database.backend, keyring, { owner: "acme", name }, () => T0);
    expect(first.repo).toMatchObject({ owner: "acme", name, created: true });
    expect(first.plaintext).toMatch(/^whsec_/);
    const second = await createRepoWithSecret(
      database.backend,
      keyring,
      { owner: "acme", name, secretName: "ci" },
      () => at(1000),
    );
    expect(second.repo).toEqual({ ...first.repo, created: false });
    expect(second.secret.name).toBe("ci");

    // The test's own client still works: the tool put the driver's global fetch settings back.
    const { ctx } = context();
    expect(await activeSigningSecrets(ctx, keyring, first.repo.id)).toEqual([
      { id: second.secret.id, keyId: second.secret.keyId, secret: second.plaintext },
      { id: first.secret.id, keyId: first.secret.keyId, secret: first.plaintext },
    ]);
    expect(await counts(first.repo.id)).toEqual({ secrets: 2, audits: 2, revoked: 0 });
    const repos = await query("select id from repos where owner = 'acme' and name = $1", [name]);
    expect(repos).toEqual([{ id: first.repo.id }]);
  });

  it("rejects bad owner and repository names before touching the database", async () => {
    for (const input of [
      { owner: "", name: "x" },
      { owner: "acme", name: "a b" },
      { owner: "acme/evil", name: "x" },
    ]) {
      await expect(createRepoWithSecret(database.backend, keyring, input)).rejects.toThrow(CreateRepoError);
    }
  });
});

describe("dev KEK", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "anchorpipe-kek-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is created once (mode 600) and then reused", async () => {
    const file = path.join(dir, "nested", "dev-kek");
    const kek = loadDevKek(file);
    expect(envSchema.safeParse({ HMAC_KEK: kek }).success).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadDevKek(file)).toBe(kek);
    expect(readFileSync(file, "utf8").trim()).toBe(kek);
    await parseKeyring(kek);
  });

  it("refuses a malformed file", () => {
    const file = path.join(dir, "bad-kek");
    writeFileSync(file, "nonsense\n");
    expect(() => loadDevKek(file)).toThrow(KekError);
  });

  it("tools use HMAC_KEK, else the dev key for the embedded database, else fail for a server", () => {
    const file = path.join(dir, "tool-kek");
    expect(resolveToolKek({ HMAC_KEK: KEK_V1, DATABASE_URL: "postgres://x@h/db" }, file)).toEqual({
      kek: KEK_V1,
      source: "HMAC_KEK",
    });
    expect(resolveToolKek({}, file)).toEqual({ kek: loadDevKek(file), source: "dev-kek" });
    expect(() => resolveToolKek({ DATABASE_URL: "postgres://x@h/db" }, file)).toThrow(/HMAC_KEK is not set/);
  });
});
