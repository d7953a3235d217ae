/**
 * Envelope encryption for stored HMAC secrets: AES-256-GCM under a
 * key-encryption key (KEK) held as a Worker secret, never in the database.
 *
 * HMAC_KEK lists every KEK version still in use as `<version>:<base64 32 bytes>`,
 * comma-separated. The highest version encrypts new rows; every listed version
 * decrypts, so the KEK can be rotated by adding a higher version, re-encrypting
 * (or letting old secrets expire) and only then removing the old one. Each row
 * records its kek_version.
 *
 * A ciphertext is base64(iv ‖ AES-GCM output), the output ending in the 16-byte
 * tag. The additional authenticated data (AAD) is not stored: the caller
 * rebuilds it from where the row sits (its repo and id), so a ciphertext
 * copied anywhere else fails authentication instead of decrypting.
 */

import { bytesToBase64, base64ToBytes as decodeBase64, randomBytes } from "./encoding";

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** kek_version is a smallint column. */
const MAX_VERSION = 32_767;

export interface Keyring {
  /** The version new ciphertexts are written under: the highest one listed. */
  readonly currentVersion: number;
  /** Every version that can decrypt, highest first. */
  readonly versions: readonly number[];
  readonly keys: ReadonlyMap<number, CryptoKey>;
}

/** HMAC_KEK is malformed. The message never contains key material. */
export class KeyringError extends Error {
  override name = "KeyringError";
}

export type DecryptFailure = "unknown_kek_version" | "malformed_ciphertext" | "authentication_failed";

/** A stored secret cannot be decrypted with this keyring and this AAD. */
export class DecryptError extends Error {
  override name = "DecryptError";
  constructor(
    readonly reason: DecryptFailure,
    message: string,
  ) {
    super(message);
  }
}

/** Parses HMAC_KEK. Rejects duplicates, bad versions and keys that are not exactly 32 bytes. */
export async function parseKeyring(value: string): Promise<Keyring> {
  const entries = value
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new KeyringError("HMAC_KEK is empty");
  const keys = new Map<number, CryptoKey>();
  for (const [index, entry] of entries.entries()) {
    const match = /^(\d+):(\S+)$/.exec(entry);
    if (!match) throw new KeyringError(`HMAC_KEK entry ${index + 1} is not <version>:<base64 key>`);
    const version = Number(match[1]);
    if (!Number.isSafeInteger(version) || version > MAX_VERSION) {
      throw new KeyringError(`HMAC_KEK entry ${index + 1}: version must be 0–${MAX_VERSION}`);
    }
    if (keys.has(version)) throw new KeyringError(`HMAC_KEK lists version ${version} twice`);
    const raw = decodeBase64(match[2], { padding: "optional" });
    if (!raw) throw new KeyringError(`HMAC_KEK version ${version}: the key is not base64`);
    if (raw.length !== KEY_BYTES) {
      throw new KeyringError(`HMAC_KEK version ${version}: the key must be ${KEY_BYTES} bytes, got ${raw.length}`);
    }
    keys.set(version, await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]));
  }
  const versions = [...keys.keys()].sort((a, b) => b - a);
  return { currentVersion: versions[0], versions, keys };
}

const cache = new Map<string, Promise<Keyring>>();

/**
 * parseKeyring, once per distinct HMAC_KEK value for the life of the isolate
 * (importing keys on every request would be wasted work). A failed parse is
 * not cached.
 */
export function keyringFor(value: string): Promise<Keyring> {
  let keyring = cache.get(value);
  if (!keyring) {
    keyring = parseKeyring(value);
    cache.set(value, keyring);
    keyring.catch(() => cache.delete(value));
  }
  return keyring;
}

/** A new single-version HMAC_KEK value, e.g. for `wrangler secret put HMAC_KEK`. */
export function generateKek(version = 1): string {
  if (!Number.isInteger(version) || version < 0 || version > MAX_VERSION) {
    throw new RangeError(`version must be 0–${MAX_VERSION}`);
  }
  return `${version}:${bytesToBase64(randomBytes(KEY_BYTES))}`;
}

/** Encrypts under the keyring's current version, binding `aad`. */
export async function encrypt(
  keyring: Keyring,
  plaintext: string,
  aad: string,
): Promise<{ ciphertext: string; kekVersion: number }> {
  const key = keyring.keys.get(keyring.currentVersion);
  if (!key) throw new KeyringError("the keyring has no current key");
  const iv = randomBytes(IV_BYTES);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(aad), tagLength: TAG_BYTES * 8 },
      key,
      new TextEncoder().encode(plaintext),
    ),
  );
  const out = new Uint8Array(IV_BYTES + sealed.length);
  out.set(iv);
  out.set(sealed, IV_BYTES);
  return { ciphertext: bytesToBase64(out), kekVersion: keyring.currentVersion };
}

/**
 * Decrypts a ciphertext written by `encrypt` under `kekVersion` with the same
 * `aad`. Throws DecryptError when the version is not in the keyring, the
 * ciphertext is malformed, or authentication fails (wrong key, altered
 * ciphertext, or a different AAD, i.e. the row was moved).
 */
export async function decrypt(keyring: Keyring, ciphertext: string, kekVersion: number, aad: string): Promise<string> {
  const key = keyring.keys.get(kekVersion);
  if (!key) {
    throw new DecryptError(
      "unknown_kek_version",
      `no key for KEK version ${kekVersion} (HMAC_KEK has ${keyring.versions.join(", ")})`,
    );
  }
  const bytes = decodeBase64(ciphertext, { padding: "optional" });
  if (!bytes) throw new DecryptError("malformed_ciphertext", "the ciphertext is not base64");
  if (bytes.length < IV_BYTES + TAG_BYTES) {
    throw new DecryptError("malformed_ciphertext", "the ciphertext is too short");
  }
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: bytes.subarray(0, IV_BYTES),
        additionalData: new TextEncoder().encode(aad),
        tagLength: TAG_BYTES * 8,
      },
      key,
      bytes.subarray(IV_BYTES),
    );
  } catch {
    throw new DecryptError(
      "authentication_failed",
      `decryption failed under KEK version ${kekVersion}: wrong key, altered ciphertext, or the row was moved`,
    );
  }
  return new TextDecoder().decode(plain);
}
