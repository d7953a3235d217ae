/**
 * Compares the caller's `Authorization: Bearer …` with the OPERATOR_TOKEN secret in constant time: both are
 * hashed first, so neither the comparison nor the lengths tell a caller how close a guess was.
 */
export async function operatorTokenMatches(authorization: string | undefined, expected: string): Promise<boolean> {
  const presented = /^Bearer ([^\s]+)$/i.exec(authorization ?? "")?.[1] ?? "";
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(presented)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b) && presented.length > 0;
}
