import { and, desc, eq, gt, isNull, or } from "drizzle-orm";
import { canonicalUuid, WEBHOOK_SECRET_PREFIX } from "../contract/ingestion";
import { hmacSecrets } from "../db/schema";
import { findSqlState } from "../lib/db-errors";
import { bytesToBase64, bytesToHex, randomBytes, sha256Hex } from "../lib/encoding";
import { decrypt, encrypt, type Keyring } from "../lib/keyring";
import { auditQuery } from "./audit";
import type { ServiceContext } from "./context";

/**
 * A repository's signing secrets. The plaintext exists only in the return
 * value of createSecret/rotateSecret (shown to the user once) and, decrypted
 * per request, in activeSigningSecrets; the table holds it encrypted (see
 * lib/keyring), and audit rows hold ids and names, never the secret.
 *
 * Ids are made here rather than by the database so the AAD, which binds the
 * ciphertext to its repo and id, is known before the insert: one batch, one
 * round trip.
 */

/** Everything about a secret that may be shown: never its plaintext, ciphertext or hash. */
export interface SecretInfo {
  id: string;
  keyId: string;
  name: string;
  active: boolean;
  revoked: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  rotatedFrom: string | null;
}

export interface SigningSecret {
  id: string;
  keyId: string;
  /** The full secret as shown to the user (`whsec_…`). */
  secret: string;
}

export const DEFAULT_SECRET_NAME = "default";
export const DEFAULT_ROTATION_OVERLAP_HOURS = 24;

/** No such secret in that repo, or it is revoked (so it cannot be rotated or revoked again). */
export class SecretNotFoundError extends Error {
  override name = "SecretNotFoundError";
  constructor(
    readonly repoId: string,
    readonly secretId: string,
  ) {
    super(`no active secret ${secretId} in repo ${repoId}`);
  }
}

export class RepoNotFoundError extends Error {
  override name = "RepoNotFoundError";
  constructor(readonly repoId: string) {
    super(`no repo ${repoId}`);
  }
}

/** The additional authenticated data of a secret's ciphertext: moving the row breaks decryption. */
export const hmacSecretAad = (repoId: string, secretId: string) =>
  `hmac_secret:${repoId.toLowerCase()}:${secretId.toLowerCase()}`;

const secretInfoColumns = {
  id: hmacSecrets.id,
  keyId: hmacSecrets.keyId,
  name: hmacSecrets.name,
  active: hmacSecrets.active,
  revoked: hmacSecrets.revoked,
  createdAt: hmacSecrets.createdAt,
  lastUsedAt: hmacSecrets.lastUsedAt,
  expiresAt: hmacSecrets.expiresAt,
  revokedAt: hmacSecrets.revokedAt,
  rotatedFrom: hmacSecrets.rotatedFrom,
};

/** A new secret's row (encrypted) and its plaintext, which leaves this module only once. */
async function newSecret(
  ctx: ServiceContext,
  keyring: Keyring,
  fields: { repoId: string; name: string; expiresAt: Date | null; rotatedFrom: string | null },
) {
  const id = crypto.randomUUID();
  const plaintext = WEBHOOK_SECRET_PREFIX + bytesToBase64(randomBytes(32));
  const { ciphertext, kekVersion } = await encrypt(keyring, plaintext, hmacSecretAad(fields.repoId, id));
  const row = {
    id,
    repoId: fields.repoId,
    name: fields.name,
    keyId: `key_${bytesToHex(randomBytes(4))}`,
    secretCiphertext: ciphertext,
    kekVersion,
    secretSha256: await sha256Hex(plaintext),
    rotatedFrom: fields.rotatedFrom,
    createdBy: ctx.actorId ?? null,
    createdAt: ctx.now(),
    expiresAt: fields.expiresAt,
  } satisfies typeof hmacSecrets.$inferInsert;
  return { row, plaintext };
}

/** The audit insert for a change to a repo's secrets, not executed: it goes in the caller's batch. */
function auditSecretChange(
  ctx: ServiceContext,
  action: "hmac_secret_created" | "hmac_secret_rotated" | "hmac_secret_revoked",
  repoId: string,
  description: string,
  metadata: Record<string, unknown>,
) {
  return auditQuery(ctx.db, {
    actorId: ctx.actorId ?? null,
    action,
    subject: "repo",
    subjectId: repoId,
    description,
    metadata,
    requestId: ctx.requestId ?? null,
    createdAt: ctx.now(),
  });
}

function assertValidDate(value: Date | null | undefined, what: string) {
  if (value != null && Number.isNaN(value.getTime())) throw new RangeError(`${what} is not a valid date`);
}

/** Creates a secret for a repo; returns its plaintext, which cannot be retrieved again. */
export async function createSecret(
  ctx: ServiceContext,
  keyring: Keyring,
  input: { repoId: string; name?: string; expiresAt?: Date | null },
): Promise<{ secret: SecretInfo; plaintext: string }> {
  const repoId = canonicalUuid(input.repoId);
  if (!repoId) throw new RepoNotFoundError(input.repoId);
  assertValidDate(input.expiresAt, "expiresAt");
  const name = input.name ?? DEFAULT_SECRET_NAME;
  const { row, plaintext } = await newSecret(ctx, keyring, {
    repoId,
    name,
    expiresAt: input.expiresAt ?? null,
    rotatedFrom: null,
  });
  try {
    const [[secret]] = await ctx.db.batch([
      ctx.db.insert(hmacSecrets).values(row).returning(secretInfoColumns),
      auditSecretChange(ctx, "hmac_secret_created", repoId, "HMAC secret created", {
        secretId: row.id,
        keyId: row.keyId,
        name,
      }),
    ]);
    return { secret, plaintext };
  } catch (error) {
    if (findSqlState(error) === "23503") throw new RepoNotFoundError(repoId);
    throw error;
  }
}

/** Every secret of a repo, newest first, without any secret material. */
export async function listSecrets(ctx: ServiceContext, anyRepoId: string): Promise<SecretInfo[]> {
  const repoId = canonicalUuid(anyRepoId);
  if (!repoId) return [];
  return ctx.db
    .select(secretInfoColumns)
    .from(hmacSecrets)
    .where(eq(hmacSecrets.repoId, repoId))
    .orderBy(desc(hmacSecrets.createdAt), desc(hmacSecrets.id));
}

/** An unrevoked secret of the repo, or SecretNotFoundError. */
async function findLiveSecret(ctx: ServiceContext, anyRepoId: string, anySecretId: string) {
  const repoId = canonicalUuid(anyRepoId);
  const secretId = canonicalUuid(anySecretId);
  if (!repoId || !secretId) throw new SecretNotFoundError(anyRepoId, anySecretId);
  const [found] = await ctx.db
    .select({ ...secretInfoColumns, repoId: hmacSecrets.repoId })
    .from(hmacSecrets)
    .where(
      and(
        eq(hmacSecrets.id, secretId),
        eq(hmacSecrets.repoId, repoId),
        eq(hmacSecrets.active, true),
        eq(hmacSecrets.revoked, false),
      ),
    )
    .limit(1);
  if (!found) throw new SecretNotFoundError(repoId, secretId);
  return found;
}

/**
 * Replaces a secret with a new one (same name, rotated_from = the old id). The
 * old one stays valid for `overlapHours` so CI can switch over, unless it
 * already expires sooner. An expired but unrevoked secret can be rotated.
 *
 * Two round trips: the read that finds the old secret (so an unknown one
 * writes nothing), then one batch. A revoke racing between them still wins
 * (the update only touches an unrevoked row); the new secret is then simply
 * a new one.
 */
export async function rotateSecret(
  ctx: ServiceContext,
  keyring: Keyring,
  input: { repoId: string; secretId: string; overlapHours?: number },
): Promise<{ secret: SecretInfo; plaintext: string }> {
  const overlapHours = input.overlapHours ?? DEFAULT_ROTATION_OVERLAP_HOURS;
  if (!Number.isFinite(overlapHours) || overlapHours < 0) {
    throw new RangeError("overlapHours must be a number ≥ 0");
  }
  const old = await findLiveSecret(ctx, input.repoId, input.secretId);
  const overlapEnd = new Date(ctx.now().getTime() + overlapHours * 3_600_000);
  const oldExpiresAt = old.expiresAt && old.expiresAt < overlapEnd ? old.expiresAt : overlapEnd;
  const { row, plaintext } = await newSecret(ctx, keyring, {
    repoId: old.repoId,
    name: old.name,
    expiresAt: null,
    rotatedFrom: old.id,
  });
  const [[secret]] = await ctx.db.batch([
    ctx.db.insert(hmacSecrets).values(row).returning(secretInfoColumns),
    ctx.db
      .update(hmacSecrets)
      .set({ expiresAt: oldExpiresAt })
      .where(and(eq(hmacSecrets.id, old.id), eq(hmacSecrets.revoked, false))),
    auditSecretChange(ctx, "hmac_secret_rotated", old.repoId, "HMAC secret rotated", {
      secretId: row.id,
      keyId: row.keyId,
      name: old.name,
      rotatedFrom: old.id,
      previousKeyId: old.keyId,
      previousExpiresAt: oldExpiresAt.toISOString(),
      overlapHours,
    }),
  ]);
  return { secret, plaintext };
}

/** Revokes a secret at once: signatures made with it stop verifying. */
export async function revokeSecret(
  ctx: ServiceContext,
  input: { repoId: string; secretId: string },
): Promise<SecretInfo> {
  const found = await findLiveSecret(ctx, input.repoId, input.secretId);
  const [[secret]] = await ctx.db.batch([
    ctx.db
      .update(hmacSecrets)
      .set({ revoked: true, active: false, revokedAt: ctx.now() })
      .where(and(eq(hmacSecrets.id, found.id), eq(hmacSecrets.revoked, false)))
      .returning(secretInfoColumns),
    auditSecretChange(ctx, "hmac_secret_revoked", found.repoId, "HMAC secret revoked", {
      secretId: found.id,
      keyId: found.keyId,
      name: found.name,
    }),
  ]);
  // Revoked by someone else between the read and the batch.
  if (!secret) throw new SecretNotFoundError(input.repoId, input.secretId);
  return secret;
}

/**
 * The stored secrets a signature for this repo may be made with (active, not
 * revoked, not expired at ctx.now()), newest first, still encrypted. Not
 * executed, so the ingestion can batch it with its own lookups.
 */
export function activeSecretsQuery(ctx: ServiceContext, repoId: string) {
  return ctx.db
    .select({
      id: hmacSecrets.id,
      keyId: hmacSecrets.keyId,
      ciphertext: hmacSecrets.secretCiphertext,
      kekVersion: hmacSecrets.kekVersion,
    })
    .from(hmacSecrets)
    .where(
      and(
        eq(hmacSecrets.repoId, repoId),
        eq(hmacSecrets.active, true),
        eq(hmacSecrets.revoked, false),
        or(isNull(hmacSecrets.expiresAt), gt(hmacSecrets.expiresAt, ctx.now())),
      ),
    )
    .orderBy(desc(hmacSecrets.createdAt), desc(hmacSecrets.id));
}

export type StoredSecret = Awaited<ReturnType<typeof activeSecretsQuery>>[number];

/**
 * Decrypts what activeSecretsQuery found. A row that cannot be decrypted (its
 * KEK version removed from HMAC_KEK, or a moved row) throws DecryptError
 * rather than being skipped: that is a misconfiguration to surface, not a bad
 * signature.
 */
export function decryptSigningSecrets(
  keyring: Keyring,
  repoId: string,
  rows: StoredSecret[],
): Promise<SigningSecret[]> {
  return Promise.all(
    rows.map(async (row) => ({
      id: row.id,
      keyId: row.keyId,
      secret: await decrypt(keyring, row.ciphertext, row.kekVersion, hmacSecretAad(repoId, row.id)),
    })),
  );
}

/** The secrets a signature for this repo may be made with, decrypted: one SELECT. */
export async function activeSigningSecrets(
  ctx: ServiceContext,
  keyring: Keyring,
  repoId: string,
): Promise<SigningSecret[]> {
  const canonical = canonicalUuid(repoId);
  if (!canonical) return [];
  return decryptSigningSecrets(keyring, canonical, await activeSecretsQuery(ctx, canonical));
}
