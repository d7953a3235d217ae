/**
 * Download links of completed exports: `…/download?expires=<unix s>&signature=<base64url>`, an HMAC-SHA256
 * over the request, its owner and the expiry, under a key derived (HKDF) from HMAC_KEK with its own label, so
 * it signs nothing else. The download route also requires the owner's own token: a leaked link alone is
 * useless, and a link works for one person only.
 */

export const DOWNLOAD_LINK_SECONDS = 15 * 60;

const encoder = new TextEncoder();

async function linkKey(secret: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: encoder.encode("anchorpipe dsr download v1") },
    base,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign", "verify"],
  );
}

const message = (requestId: string, userId: string, expires: number) =>
  encoder.encode(`${requestId}\n${userId}\n${expires}`);

const base64url = (bytes: ArrayBuffer) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");

function fromBase64url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]{43}$/.test(text)) return null;
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

export async function signDownload(
  secret: string,
  input: { requestId: string; userId: string; now: Date; seconds?: number },
): Promise<{ expires: number; signature: string }> {
  const expires = Math.floor(input.now.getTime() / 1000) + (input.seconds ?? DOWNLOAD_LINK_SECONDS);
  const signature = await crypto.subtle.sign(
    "HMAC",
    await linkKey(secret),
    message(input.requestId, input.userId, expires),
  );
  return { expires, signature: base64url(signature) };
}

/** True when the signature is this request's and this user's, and the link has not expired. */
export async function verifyDownload(
  secret: string,
  input: { requestId: string; userId: string; expires: number; signature: string; now: Date },
): Promise<boolean> {
  if (!Number.isSafeInteger(input.expires) || input.expires * 1000 <= input.now.getTime()) return false;
  const signature = fromBase64url(input.signature);
  if (!signature) return false;
  return crypto.subtle.verify(
    "HMAC",
    await linkKey(secret),
    signature,
    message(input.requestId, input.userId, input.expires),
  );
}
