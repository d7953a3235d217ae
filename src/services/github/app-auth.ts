import githubAppJwt from "universal-github-app-jwt";
import { base64ToBytes, bytesToBase64 } from "../../lib/encoding";

/**
 * Authenticating as the GitHub App: a short-lived JWT signed with the App's private key, exchanged for
 * installation tokens that are cached per isolate. Nothing here logs, and errors never carry a token, the
 * JWT or the key.
 */

// rsaEncryption's AlgorithmIdentifier (OID 1.2.840.113549.1.1.1 with NULL parameters), DER.
const RSA_ALGORITHM_IDENTIFIER = [
  0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

function derLength(length: number): number[] {
  if (length < 0x80) return [length];
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest >>= 8) bytes.unshift(rest & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/**
 * The key as PKCS#8 PEM. GitHub hands out PKCS#1 ("BEGIN RSA PRIVATE KEY") and Web Crypto only imports
 * PKCS#8; universal-github-app-jwt converts with node:crypto only under the "node" export condition, which a
 * Worker bundle does not use. PKCS#8 merely wraps the PKCS#1 structure (RFC 5208), so the wrapping is done
 * here. Keys pasted into an environment variable with literal "\n" are accepted too.
 */
export function toPkcs8Pem(privateKey: string): string {
  const pem = privateKey.replace(/\\n/g, "\n");
  const armour = /-----BEGIN (RSA )?PRIVATE KEY-----([\s\S]*?)-----END \1?PRIVATE KEY-----/.exec(pem);
  if (!armour) throw new Error("the GitHub App private key is not a PEM private key");
  const decoded = base64ToBytes(armour[2]!.replace(/\s+/g, ""));
  if (!decoded) throw new Error("the GitHub App private key is not a PEM private key");
  let der: Uint8Array;
  if (armour[1]) {
    const pkcs1 = decoded;
    const octetString = [0x04, ...derLength(pkcs1.length)];
    const contentLength = 3 + RSA_ALGORITHM_IDENTIFIER.length + octetString.length + pkcs1.length;
    der = new Uint8Array([
      0x30,
      ...derLength(contentLength),
      0x02,
      0x01,
      0x00,
      ...RSA_ALGORITHM_IDENTIFIER,
      ...octetString,
      ...pkcs1,
    ]);
  } else {
    der = decoded;
  }
  const lines = bytesToBase64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}

/**
 * The App's JWT: issued 60 s in the past so a GitHub clock a little behind ours still accepts it, and
 * expiring 9 minutes from now, inside GitHub's 10-minute limit.
 */
export async function createAppJwt(appId: string, pkcs8PrivateKey: string, now: Date): Promise<string> {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  // The library itself backdates by 30 s and adds 10 minutes to that.
  const { token } = await githubAppJwt({ id: appId, privateKey: pkcs8PrivateKey, now: nowSeconds - 30 });
  return token;
}

export interface CachedToken {
  token: string;
  expiresAtMs: number;
}

/** A token is reused until five minutes before it expires, so no call starts with one about to lapse. */
export const TOKEN_REFRESH_MARGIN_MS = 5 * 60 * 1000;

/**
 * Installation tokens per isolate, keyed by API, App, key and installation, so two Apps (or a test's
 * wrong key) never share one. Concurrent requests for the same installation share one exchange.
 */
export class InstallationTokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  async get(key: string, now: Date, exchange: () => Promise<CachedToken>): Promise<string> {
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAtMs - TOKEN_REFRESH_MARGIN_MS > now.getTime()) return cached.token;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = exchange().finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const fresh = await pending;
    this.tokens.set(key, fresh);
    return fresh.token;
  }

  /** Forgets the token GitHub just refused, unless another request has already replaced it. */
  drop(key: string, token: string): void {
    if (this.tokens.get(key)?.token === token) this.tokens.delete(key);
  }
}

export const installationTokens = new InstallationTokenCache();

/** A short fingerprint of the key for cache keys, so the key itself is never kept as one. */
export async function keyFingerprint(pkcs8PrivateKey: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pkcs8PrivateKey));
  return bytesToBase64(new Uint8Array(digest)).slice(0, 16);
}
