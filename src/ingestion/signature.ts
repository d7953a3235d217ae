import { base64ToBytes, hexToBytes } from "../lib/encoding";
import type { SigningSecret } from "../services/secrets";

/**
 * Signature checks for uploads (spec/ingestion.md). Both schemes verify the
 * exact bytes received, with `crypto.subtle.verify`, which compares in
 * constant time. Every malformed input (bad hex or base64, wrong length,
 * empty entries) is simply "not valid": nothing here throws on client input.
 */

export type SignatureScheme = "v1" | "v2";

/** Standard Webhooks' tolerance for the sender's clock, in seconds. */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;

export interface SignedRequest {
  scheme: SignatureScheme;
  /** v2 only. */
  webhookId?: string;
  webhookTimestamp?: string;
  /** v1: the hex signature; v2: the space-separated `v1,<base64>` list. */
  signature: string;
}

/** Which scheme a request uses, by its headers; null when it carries no signature at all. */
export function signedRequestFrom(headers: Headers): SignedRequest | null {
  const v2 = headers.get("webhook-signature");
  if (v2 !== null) {
    return {
      scheme: "v2",
      signature: v2,
      webhookId: headers.get("webhook-id") ?? undefined,
      webhookTimestamp: headers.get("webhook-timestamp") ?? undefined,
    };
  }
  const v1 = headers.get("x-fr-sig");
  return v1 === null ? null : { scheme: "v1", signature: v1 };
}

async function hmacKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
}

/** v1 (anchorpipe): hex HMAC-SHA256 of the body, keyed by the secret's UTF-8 bytes. */
async function verifyV1(body: Uint8Array, signatureHex: string, secret: string): Promise<boolean> {
  const signature = hexToBytes(signatureHex.trim());
  if (signature?.length !== 32) return false;
  const key = await hmacKey(new TextEncoder().encode(secret));
  return crypto.subtle.verify("HMAC", key, signature as Uint8Array, body);
}

/** The key bytes of a `whsec_` secret, as Standard Webhooks defines them. */
function webhookKey(secret: string): Uint8Array | null {
  return base64ToBytes(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
}

/** v2 (Standard Webhooks): any `v1,<base64>` entry over `{id}.{timestamp}.{body}` may match. */
async function verifyV2(body: Uint8Array, request: SignedRequest, secret: string): Promise<boolean> {
  const raw = webhookKey(secret);
  if (!raw || raw.length === 0) return false;
  const key = await hmacKey(raw);
  const prefix = new TextEncoder().encode(`${request.webhookId}.${request.webhookTimestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix);
  signed.set(body, prefix.length);
  for (const entry of request.signature.split(" ")) {
    const [version, value] = entry.split(",", 2);
    if (version !== "v1" || !value) continue;
    const signature = base64ToBytes(value);
    if (signature?.length !== 32) continue;
    if (await crypto.subtle.verify("HMAC", key, signature as Uint8Array, signed)) return true;
  }
  return false;
}

export type VerificationFailure =
  | "missing_headers"
  | "timestamp_invalid"
  | "timestamp_outside_window"
  | "no_active_secret"
  | "signature_mismatch"
  | "scheme_not_allowed";

export type Verification = { ok: true; secret: SigningSecret } | { ok: false; reason: VerificationFailure };

/**
 * Tries the repository's secrets, newest first; the first match wins (that is
 * how rotation keeps old uploaders working during the overlap).
 */
export async function verifySignature(
  body: Uint8Array,
  request: SignedRequest,
  secrets: SigningSecret[],
  now: Date,
  options: { allowV1: boolean },
): Promise<Verification> {
  if (request.scheme === "v1" && !options.allowV1) return { ok: false, reason: "scheme_not_allowed" };
  if (request.scheme === "v2") {
    const { webhookId, webhookTimestamp } = request;
    if (!webhookId || !webhookTimestamp) return { ok: false, reason: "missing_headers" };
    if (!/^\d{1,12}$/.test(webhookTimestamp)) return { ok: false, reason: "timestamp_invalid" };
    const skew = Math.abs(now.getTime() / 1000 - Number(webhookTimestamp));
    if (skew > TIMESTAMP_TOLERANCE_SECONDS) return { ok: false, reason: "timestamp_outside_window" };
  }
  if (secrets.length === 0) return { ok: false, reason: "no_active_secret" };
  for (const secret of secrets) {
    const valid =
      request.scheme === "v1"
        ? await verifyV1(body, request.signature, secret.secret)
        : await verifyV2(body, request, secret.secret);
    if (valid) return { ok: true, secret };
  }
  return { ok: false, reason: "signature_mismatch" };
}
