/**
 * Request signing for POST /api/ingestion (spec: ingestion.md, "Authentication"). Header names, the
 * webhook-id rule and the secret prefix come from the wire contract.
 *
 * Both schemes sign the exact bytes that go on the wire: callers serialise the body once, sign that buffer
 * and send that same buffer. Re-serialising between signing and sending would change whitespace or key order
 * and break the signature.
 *
 * Error messages here never contain the secret, not even a prefix of it: they end up in CI logs.
 */
import { createHmac } from "node:crypto";
import {
  HEADERS,
  type SignatureScheme,
  WEBHOOK_ID_PATTERN,
  WEBHOOK_SECRET_PREFIX,
} from "../../src/contract/ingestion.ts";

export type { SignatureScheme };

export class SecretFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretFormatError";
  }
}

type Bytes = string | Uint8Array;

/** v1 (anchorpipe-compatible): lowercase hex HMAC-SHA256 of the body, keyed with the secret's UTF-8 bytes. */
export function signV1(secret: string, body: Bytes): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(body).digest("hex");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/**
 * The HMAC key of a v2 secret: the base64-decoded part after `whsec_`. The prefix is required: a v1 secret
 * (any string) would otherwise be "decoded" into a wrong key and every upload would fail with a bare 401.
 */
export function decodeWebhookSecret(secret: string): Buffer {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    throw new SecretFormatError(
      `ANCHORPIPE_SECRET is not a v2 secret (those start with ${WEBHOOK_SECRET_PREFIX}). Use --signature v1 for a v1 secret.`,
    );
  }
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new SecretFormatError(`ANCHORPIPE_SECRET: the part after ${WEBHOOK_SECRET_PREFIX} is not valid base64.`);
  }
  return Buffer.from(encoded, "base64");
}

/** Standard Webhooks: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. */
export function signV2(key: Uint8Array, id: string, timestamp: number, body: Bytes): string {
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.`, "utf8").update(body).digest("base64");
  return `v1,${mac}`;
}

export interface SignRequest {
  scheme: SignatureScheme;
  secret: string;
  repoId: string;
  /** The idempotency key; sent as webhook-id in v2. */
  id: string;
  body: Uint8Array;
  /** Unix seconds; taken fresh for each attempt because the server accepts only ±300 s. */
  timestamp: number;
}

/** Every header the ingestion endpoint needs, signature included. */
export function signedHeaders(req: SignRequest): Record<string, string> {
  const headers: Record<string, string> = {
    [HEADERS.authorization]: `Bearer ${req.repoId}`,
    "content-type": "application/json",
  };
  if (req.scheme === "v1") {
    headers[HEADERS.v1Signature] = signV1(req.secret, req.body);
  } else {
    if (!WEBHOOK_ID_PATTERN.test(req.id)) throw new Error("the key is not a webhook-id (WEBHOOK_ID_PATTERN)");
    headers[HEADERS.webhookId] = req.id;
    headers[HEADERS.webhookTimestamp] = String(req.timestamp);
    headers[HEADERS.webhookSignature] = signV2(decodeWebhookSecret(req.secret), req.id, req.timestamp, req.body);
  }
  return headers;
}

/**
 * The headers of a signed read (GET /api/repos/:repoId/quarantine): the v2 signature over an empty body,
 * exactly as an upload is signed, with a fresh webhook-id. Reads take v2 only (spec/api.md).
 */
export function signedReadHeaders(req: { secret: string; repoId: string; id: string; timestamp: number }) {
  if (!WEBHOOK_ID_PATTERN.test(req.id)) throw new Error("the id is not a webhook-id (WEBHOOK_ID_PATTERN)");
  return {
    [HEADERS.authorization]: `Bearer ${req.repoId}`,
    [HEADERS.webhookId]: req.id,
    [HEADERS.webhookTimestamp]: String(req.timestamp),
    [HEADERS.webhookSignature]: signV2(decodeWebhookSecret(req.secret), req.id, req.timestamp, new Uint8Array()),
  };
}
