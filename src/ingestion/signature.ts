import {
  HEADERS,
  MAX_SIGNATURE_ENTRIES,
  type SignatureScheme,
  TIMESTAMP_TOLERANCE_SECONDS,
  WEBHOOK_SECRET_PREFIX,
} from "../contract/ingestion";
import { base64ToBytes, hexToBytes } from "../lib/encoding";
import type { SigningSecret } from "../services/secrets";

/**
 * Signature checks for uploads (spec/ingestion.md). Both schemes verify the
 * exact bytes received. Each candidate secret's MAC is computed once and
 * compared with every presented signature in constant time, so a header with
 * many entries costs comparisons, not HMACs; and the number of entries is
 * bounded before any MAC is computed. Every malformed input (bad hex or
 * base64, wrong length, empty entries) is simply "not valid": nothing here
 * throws on client input.
 */

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
  const v2 = headers.get(HEADERS.webhookSignature);
  if (v2 !== null) {
    return {
      scheme: "v2",
      signature: v2,
      webhookId: headers.get(HEADERS.webhookId) ?? undefined,
      webhookTimestamp: headers.get(HEADERS.webhookTimestamp) ?? undefined,
    };
  }
  const v1 = headers.get(HEADERS.v1Signature);
  return v1 === null ? null : { scheme: "v1", signature: v1 };
}

const MAC_BYTES = 32;

async function hmac(key: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  const imported = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, message));
}

/** Constant-time equality of two MACs of the same (public) length. */
function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && crypto.subtle.timingSafeEqual(a, b);
}

/** The key bytes of a `whsec_` secret, as Standard Webhooks defines them. */
function webhookKey(secret: string): Uint8Array | null {
  return base64ToBytes(secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret);
}

/** The decoded signatures a request presents; null when the header is malformed beyond use. */
function presentedMacs(request: SignedRequest): Uint8Array[] | null {
  if (request.scheme === "v1") {
    const mac = hexToBytes(request.signature.trim());
    return mac?.length === MAC_BYTES ? [mac] : [];
  }
  const entries = request.signature.split(" ").filter((entry) => entry !== "");
  if (entries.length > MAX_SIGNATURE_ENTRIES) return null;
  const macs: Uint8Array[] = [];
  for (const entry of entries) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const mac = base64ToBytes(entry.slice(comma + 1));
    if (mac?.length === MAC_BYTES) macs.push(mac);
  }
  return macs;
}

/** What a secret's MAC is computed over: the body (v1), or `{id}.{timestamp}.{body}` (v2). */
function signedContent(body: Uint8Array, request: SignedRequest): Uint8Array {
  if (request.scheme === "v1") return body;
  const prefix = new TextEncoder().encode(`${request.webhookId}.${request.webhookTimestamp}.`);
  const content = new Uint8Array(prefix.length + body.length);
  content.set(prefix);
  content.set(body, prefix.length);
  return content;
}

/** v1 keys are the secret's UTF-8 bytes; v2 keys are the decoded `whsec_` bytes. */
function keyFor(scheme: SignatureScheme, secret: string): Uint8Array | null {
  if (scheme === "v1") return new TextEncoder().encode(secret);
  const key = webhookKey(secret);
  return key && key.length > 0 ? key : null;
}

export type VerificationFailure =
  | "missing_headers"
  | "timestamp_invalid"
  | "timestamp_outside_window"
  | "too_many_signatures"
  | "no_active_secret"
  | "signature_mismatch"
  | "scheme_not_allowed";

export type Verification = { ok: true; secret: SigningSecret } | { ok: false; reason: VerificationFailure };

/** The checks that need no secret: scheme policy, headers, clock window, the signature list's size. */
export function precheckSignature(
  request: SignedRequest,
  now: Date,
  options: { allowV1: boolean },
): VerificationFailure | null {
  if (request.scheme === "v1") return options.allowV1 ? null : "scheme_not_allowed";
  const { webhookId, webhookTimestamp } = request;
  if (!webhookId || !webhookTimestamp) return "missing_headers";
  if (!/^\d{1,12}$/.test(webhookTimestamp)) return "timestamp_invalid";
  const skew = Math.abs(now.getTime() / 1000 - Number(webhookTimestamp));
  if (skew > TIMESTAMP_TOLERANCE_SECONDS) return "timestamp_outside_window";
  if (presentedMacs(request) === null) return "too_many_signatures";
  return null;
}

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
  const early = precheckSignature(request, now, options);
  if (early) return { ok: false, reason: early };
  if (secrets.length === 0) return { ok: false, reason: "no_active_secret" };
  const presented = presentedMacs(request) ?? [];
  if (presented.length === 0) return { ok: false, reason: "signature_mismatch" };
  const content = signedContent(body, request);
  for (const secret of secrets) {
    const key = keyFor(request.scheme, secret.secret);
    if (!key) continue;
    const expected = await hmac(key, content);
    // Every entry is compared, whatever matched first, so timing says nothing about which one did.
    let matched = false;
    for (const mac of presented) matched = sameMac(expected, mac) || matched;
    if (matched) return { ok: true, secret };
  }
  return { ok: false, reason: "signature_mismatch" };
}
