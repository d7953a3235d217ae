import { createPublicKey, type KeyObject, verify } from "node:crypto";

/**
 * The App JWT check GitHub makes on `Authorization: Bearer <JWT>`: RS256 signed with the App's registered
 * key, `iss` the App id, issued in the past, not expired, and living at most ten minutes. Returns why it is
 * refused, or null when it is accepted.
 */
export function appJwtRefusal(
  jwt: string,
  appId: string,
  publicKey: KeyObject | string,
  nowSeconds: number,
): string | null {
  const parts = jwt.split(".");
  if (parts.length !== 3) return "A JSON web token could not be decoded";
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
  let header: { alg?: unknown };
  let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
  try {
    header = JSON.parse(Buffer.from(encodedHeader, "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(encodedPayload, "base64url").toString("utf8"));
  } catch {
    return "A JSON web token could not be decoded";
  }
  if (header.alg !== "RS256") return "A JSON web token could not be decoded";
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  const signed = Buffer.from(`${encodedHeader}.${encodedPayload}`);
  if (!verify("RSA-SHA256", signed, key, Buffer.from(encodedSignature, "base64url"))) {
    return "A JSON web token could not be decoded";
  }
  if (String(claims.iss) !== appId) return "'Issuer' claim ('iss') must be an Integer";
  const { iat, exp } = claims;
  if (typeof iat !== "number" || !Number.isInteger(iat) || iat > nowSeconds) {
    return "'Issued at' claim ('iat') must be an Integer representing a time in the past";
  }
  if (typeof exp !== "number" || !Number.isInteger(exp) || exp <= nowSeconds) {
    return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
  }
  if (exp - iat > 600) return "'Expiration time' claim ('exp') is too far in the future";
  return null;
}
