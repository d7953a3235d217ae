/**
 * One JSON object per line, which Workers Logs and `wrangler tail` index.
 * Callers pass only what is safe to keep: never a secret, token, connection string, query string or personal
 * data. As a second line of defence the logger blanks fields whose name says they hold a credential and
 * rewrites string values that look like one (a postgres:// URL, a bearer or personal token, a signing
 * secret, an email address), so one careless field cannot put a secret into the logs.
 */
export type LogFields = Record<string, unknown>;

const SECRET_KEY =
  /^(authorization|cookie|set-cookie|password|passwd|secret|token|api[_-]?key|plaintext|database_?url|connection(_?string)?|dsn|email|hmac_kek|operator_token|private_?key|jwt|github_(webhook_secret|app_private_key))$/i;

const SECRET_VALUES: [RegExp, string][] = [
  [/\bpostgres(?:ql)?:\/\/[^\s"']+/gi, "[connection string]"],
  [/\bBearer\s+[A-Za-z0-9._~+/=-]+/gi, "Bearer [redacted]"],
  // GitHub's tokens (installation, personal, fine-grained), a JWT (the App's), a PEM key.
  [/\b(?:gh[opsur]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})/g, "[token]"],
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/g, "[jwt]"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]*(?:-----END [A-Z ]*PRIVATE KEY-----)?/g, "[private key]"],
  [/\bap_[A-Za-z0-9_-]{16,}/g, "[token]"],
  [/\bwhsec_[A-Za-z0-9+/=]{16,}/g, "[secret]"],
  [/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g, "[email]"],
];

function scrubString(value: string): string {
  let out = value;
  for (const [pattern, replacement] of SECRET_VALUES) out = out.replace(pattern, replacement);
  return out;
}

function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return scrubString(value);
  if (value === null || typeof value !== "object") return value;
  // Deeper than any field the Worker logs: not walked, and not written unchecked either.
  if (depth > 4) return "[nested]";
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) ? "[redacted]" : scrub(field, depth + 1);
  }
  return out;
}

/** The line as it is written: exported for tests. */
export function formatLine(level: "info" | "warn" | "error", event: string, fields: LogFields): string {
  return JSON.stringify({ level, event, ...(scrub(fields) as LogFields) });
}

export const log = {
  info: (event: string, fields: LogFields = {}) => console.log(formatLine("info", event, fields)),
  warn: (event: string, fields: LogFields = {}) => console.warn(formatLine("warn", event, fields)),
  error: (event: string, fields: LogFields = {}) => console.error(formatLine("error", event, fields)),
};
