/**
 * Failure output from CI is full of things that must not be stored: tokens,
 * keys, passwords in URLs, people's email addresses, dumped blobs. Details are
 * redacted before storage and capped (docs/adr/0004-failure-details-privacy.md).
 * The patterns favour over-redaction: a lost hex string costs less than a leaked key.
 */
const RULES: [kind: string, pattern: RegExp][] = [
  ["private-key", /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g],
  ["url-credentials", /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/:@]+:[^\s/@]+@/gi],
  ["jwt", /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g],
  ["github-token", /\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b/g],
  ["aws-key", /\b(AKIA|ASIA)[A-Z0-9]{16}\b/g],
  ["slack-token", /\bxox[abposr]-[A-Za-z0-9-]{10,}/g],
  ["webhook-secret", /\bwhsec_[A-Za-z0-9+/=]{16,}/g],
  ["stripe-key", /\b(sk|rk)_(live|test)_[A-Za-z0-9]{16,}/g],
  ["bearer", /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/-]{12,}=*/g],
  [
    "assignment",
    /\b([A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)[A-Za-z0-9_.-]*)(\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;]+)/gi,
  ],
  ["email", /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g],
  ["blob", /\b[A-Fa-f0-9]{40,}\b|[A-Za-z0-9+/]{64,}={0,2}/g],
];

export function redact(text: string): string {
  let out = text;
  for (const [kind, pattern] of RULES) {
    out = out.replace(pattern, (...match: string[]) => {
      if (kind === "url-credentials") return `${match[1]}[REDACTED:credentials]@`;
      if (kind === "assignment") return `${match[1]}${match[2]}[REDACTED:secret]`;
      return `[REDACTED:${kind}]`;
    });
  }
  return out;
}

const TRUNCATION_MARK = "\n…[truncated]";

/** Redacts, then cuts to `max` characters (never inside a surrogate pair). */
export function redactAndCap(text: string, max: number): string {
  const redacted = redact(text);
  if (redacted.length <= max) return redacted;
  let cut = max - TRUNCATION_MARK.length;
  const code = redacted.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return redacted.slice(0, cut) + TRUNCATION_MARK;
}
