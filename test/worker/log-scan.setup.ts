import { env } from "cloudflare:workers";
import { afterAll, expect } from "vitest";

/**
 * Every worker test file's console output, checked when the file ends (vitest.config.ts, setupFiles): no
 * connection string with a password, no personal token or signing secret, no GitHub installation token, JWT
 * or private key, and none of the run's own secrets (the database URLs and their passwords, the
 * key-encryption key, the GitHub App's webhook secret and private key) in anything the Worker or the
 * tests printed. Lines a test swallows with its own console spy are that test's to check
 * (test/worker/logs.test.ts scans a whole session that way, emails and query strings included).
 */
const printed: string[] = [];

function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    printed.push(args.map(text).join(" "));
    original(...args);
  };
}

const SHAPES: [string, RegExp][] = [
  ["a connection string with a password", /\bpostgres(?:ql)?:\/\/[^\s"'/@:]+:[^\s"'@]+@/i],
  ["a personal token", /\bap_[A-Za-z0-9_-]{40,}/],
  ["a signing secret", /\bwhsec_[A-Za-z0-9+/]{40,}/],
  ["a GitHub installation token", /\bghs_[A-Za-z0-9]{30,}/],
  ["a JWT", /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,}/],
  ["a PEM private key", /-----BEGIN (?:RSA )?PRIVATE KEY-----/],
];

function runSecrets(): [string, string][] {
  const secrets: [string, string][] = [];
  for (const name of ["DATABASE_URL", "DATABASE_URL_READONLY"] as const) {
    const url = env[name];
    if (!url) continue;
    secrets.push([name, url]);
    const password = decodeURIComponent(new URL(url).password);
    if (password.length >= 8) secrets.push([`${name}'s password`, password]);
  }
  for (const part of (env.HMAC_KEK ?? "").split(",")) {
    const key = part.split(":")[1];
    if (key) secrets.push(["HMAC_KEK", key]);
  }
  if (env.GITHUB_WEBHOOK_SECRET) secrets.push(["GITHUB_WEBHOOK_SECRET", env.GITHUB_WEBHOOK_SECRET]);
  // Any one line of the key's body is enough to tell a leak, even of a key printed without its PEM armour.
  for (const line of (env.GITHUB_APP_PRIVATE_KEY ?? "").split(/\\n|\n/)) {
    if (line.length >= 32 && !line.startsWith("-----")) secrets.push(["GITHUB_APP_PRIVATE_KEY", line]);
  }
  return secrets;
}

afterAll(() => {
  const leaks: string[] = [];
  const secrets = runSecrets();
  printed.forEach((line, i) => {
    for (const [what, shape] of SHAPES) if (shape.test(line)) leaks.push(`line ${i + 1}: ${what}`);
    for (const [what, value] of secrets) if (line.includes(value)) leaks.push(`line ${i + 1}: ${what}`);
  });
  printed.length = 0;
  // Names the kind of leak and the line, never the secret itself.
  expect(leaks, "console output carries a secret").toEqual([]);
});
