/**
 * GitHub's webhook signature: `X-Hub-Signature-256: sha256=<64 lowercase hex>`, an HMAC-SHA256 of the exact
 * request body bytes keyed by the App's webhook secret (UTF-8).
 *
 * Not @octokit/webhooks-methods' `verify`: it takes the body as a string (so the bytes would be decoded and
 * re-encoded first: invalid UTF-8 becomes U+FFFD and the check is no longer over what was received), and its
 * web build parses the hex leniently (a header with no hex pair throws a TypeError, junk between pairs is
 * skipped). Here the header must match one linear pattern, and `crypto.subtle.verify` compares the MAC in
 * constant time.
 */

import { hexToBytes } from "../../lib/encoding";

export const SIGNATURE_HEADER = "x-hub-signature-256";

const SIGNATURE = /^sha256=([0-9a-f]{64})$/i;

export type WebhookSignatureFailure = "missing_signature" | "malformed_signature" | "bad_signature";

export type WebhookSignatureCheck = { ok: true } | { ok: false; reason: WebhookSignatureFailure };

const encoder = new TextEncoder();

/** Checks `header` (the X-Hub-Signature-256 value, or null) over `body` with `secret`. Never throws on input. */
export async function verifyGithubSignature(
  secret: string,
  body: Uint8Array<ArrayBuffer>,
  header: string | null,
): Promise<WebhookSignatureCheck> {
  if (header === null || header === "") return { ok: false, reason: "missing_signature" };
  const match = SIGNATURE.exec(header.trim());
  if (!match) return { ok: false, reason: "malformed_signature" };
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "verify",
  ]);
  // The pattern admits only 64 hex digits, so the MAC always decodes.
  const mac = hexToBytes(match[1]!) as Uint8Array<ArrayBuffer>;
  const valid = await crypto.subtle.verify("HMAC", key, mac, body);
  return valid ? { ok: true } : { ok: false, reason: "bad_signature" };
}
