/**
 * Entity tags (RFC 9110 §8.8.3, §13.1.2) for answers a client polls, such as CI's quarantine list.
 */

/** A strong tag: the quoted base64url SHA-256 of the exact body bytes. */
export async function strongEtag(body: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
  const base64 = btoa(String.fromCharCode(...digest));
  return `"${base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}"`;
}

/** One entity-tag of a list: optional `W/`, then a quoted opaque tag (etagc: no DQUOTE, no controls, no space). */
const ENTITY_TAG = /^[ \t]*(?:W\/)?("[\x21\x23-\x7E\x80-\xFF]*")[ \t]*(?:,|$)/;

/**
 * Whether `If-None-Match` matches `etag`, so the answer is 304: `*`, or any tag of the list equal to it by the
 * weak comparison (a `W/` prefix is ignored). A header that is not a well-formed list matches nothing (the
 * full answer is always safe).
 */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  let rest = header;
  while (rest.trim() !== "") {
    // Empty list elements (", ,") are allowed by the list syntax (RFC 9110 §5.6.1).
    const empty = /^[ \t]*,/.exec(rest);
    if (empty) {
      rest = rest.slice(empty[0].length);
      continue;
    }
    const match = ENTITY_TAG.exec(rest);
    if (!match) return false;
    if (match[1] === etag) return true;
    rest = rest.slice(match[0].length);
  }
  return false;
}
