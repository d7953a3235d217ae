/**
 * Failure output from CI is full of things that must not be stored: tokens,
 * keys, passwords in URLs, people's email addresses, dumped blobs. Details are
 * redacted before storage and capped (docs/adr/0004-failure-details-privacy.md,
 * the rule set and its sources: docs/redaction-rules.md).
 * The patterns favour over-redaction: a lost hex string costs less than a leaked key.
 *
 * Redaction runs on untrusted input of up to the body cap (5 MiB), so every
 * pattern must run in time linear in its input, including when it fails at
 * every position of a `/g` search. The shapes that keep them linear:
 * - a token starts with a literal prefix, and a run after it is bounded
 *   (`{20,300}`): an attempt reads at most the bound, and one that reaches
 *   the minimum length succeeds and consumes what it read;
 * - where a token's first characters can also occur inside it (`eyJ` in a JWT,
 *   any word in an e-mail's local part), the match starts at the character
 *   before the token — `(^|[^…])` — so one run is tried once, not at each of
 *   its positions;
 * - an unbounded run is allowed only where no other attempt can start inside
 *   it, or where nothing after it can fail (the private key body runs to its
 *   END line or the end of the text);
 * - minimum lengths that would make the automaton large (blobs of 40/64+) are
 *   checked on the match, in `replace`, instead of in the pattern.
 * recheck proves each pattern linear (test/node/redact-redos.test.ts);
 * `npm run bench:redact` measures it on adversarial and ordinary text.
 */

/** One redaction rule: a shape of secret or personal data and how a match is replaced. */
export interface RedactionRule {
  /** Stable name of the rule (tests, docs). */
  id: string;
  /** What the marker says: `[REDACTED:<kind>]`. Several rules may share a kind. */
  kind: string;
  /** Where the shape comes from (gitleaks rule ids, secretlint rule packages, vendor docs). */
  source: string;
  /** A global pattern that runs in linear time (checked with recheck in the tests). */
  pattern: RegExp;
  /**
   * The replacement for a match; default: the marker. `groups` are the
   * capture groups, `before` and `after` the characters around the match.
   * Returning `match` keeps the text.
   */
  replace?: (match: string, groups: string[], before: string, after: string) => string;
}

const marker = (kind: string) => `[REDACTED:${kind}]`;

/** A match that starts with a captured delimiter `(^|[^…])` keeps it. */
const afterDelimiter =
  (kind: string) =>
  (_match: string, [delimiter]: string[]) =>
    `${delimiter}${marker(kind)}`;

const isWordChar = (char: string) => /\w/.test(char);

export const REDACTION_RULES: readonly RedactionRule[] = [
  {
    // First, so that the key's base64 body is one marker, not many blobs. An
    // unterminated block is redacted to the end of the text.
    id: "private-key",
    kind: "private-key",
    source: "gitleaks private-key; secretlint @secretlint/secretlint-rule-privatekey",
    pattern:
      /-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|$)/g,
  },
  {
    // Starts at "://": the scheme stays, and neither run can contain another "://".
    id: "url-credentials",
    kind: "credentials",
    source: "secretlint @secretlint/secretlint-rule-basicauth; RFC 3986 userinfo",
    pattern: /:\/\/[^\s/:@]+:[^\s/@]+@/g,
    replace: () => `://${marker("credentials")}@`,
  },
  {
    id: "jwt",
    kind: "jwt",
    source: "gitleaks jwt; RFC 7519 (base64url header and payload of JSON objects start with eyJ)",
    pattern: /(^|[^\w-])eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*/g,
    replace: afterDelimiter("jwt"),
  },
  {
    id: "github-token",
    kind: "github-token",
    source:
      "gitleaks github-pat, github-oauth, github-app-token, github-refresh-token, github-fine-grained-pat; secretlint @secretlint/secretlint-rule-github",
    pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_\w{22,255})/g,
  },
  {
    // The installation token format of 2026: ghs_<app id>_<JWT-like>.
    id: "github-app-installation-token",
    kind: "github-token",
    source: "secretlint @secretlint/secretlint-rule-github (GitHub changelog 2026-04-24)",
    pattern: /(^|[^\w-])ghs_[0-9]+_[\w-]+\.[\w-]+\.[\w-]+/g,
    replace: afterDelimiter("github-token"),
  },
  {
    id: "gitlab-token",
    kind: "gitlab-token",
    source:
      "gitleaks gitlab-pat, gitlab-pat-routable, gitlab-deploy-token, gitlab-runner-authentication-token, gitlab-ptt, gitlab-cicd-job-token, gitlab-feed-token, gitlab-incoming-mail-token, gitlab-kubernetes-agent-token, gitlab-oauth-app-secret, gitlab-scim-token, gitlab-feature-flag-client-token, gitlab-rrt",
    pattern:
      /\b(?:(?:glpat|gldt|glrt|glptt|glcbt|glft|glimt|glagent|gloas|glsoat|glffct)-[\w.-]{20,300}|GR1348941[\w-]{20,64})/g,
  },
  {
    id: "google-api-key",
    kind: "google-api-key",
    source: "gitleaks gcp-api-key",
    pattern: /\bAIza[\w-]{35}/g,
  },
  {
    id: "npm-token",
    kind: "npm-token",
    source: "gitleaks npm-access-token; secretlint @secretlint/secretlint-rule-npm",
    pattern: /\bnpm_[A-Za-z0-9]{36}/g,
  },
  {
    id: "aws-access-key",
    kind: "aws-key",
    source: "gitleaks aws-access-token; secretlint @secretlint/secretlint-rule-aws (AWSAccessKeyID)",
    pattern: /\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/g,
  },
  {
    // A secret access key has no prefix of its own: it is recognised by the name it is given
    // (aws_secret_access_key=…, "SecretAccessKey": "…", AWS_SECRET_ACCESS_KEY: …).
    id: "aws-secret-key",
    kind: "aws-secret-key",
    source: "secretlint @secretlint/secretlint-rule-aws (AWSSecretAccessKey)",
    pattern: /(secret_?access_?key["']?\s{0,8}(?::=|=>|[:=])\s{0,8}["']?)[A-Za-z0-9/+=]{40,128}/gi,
    replace: (_match, [name]) => `${name}${marker("aws-secret-key")}`,
  },
  {
    id: "slack-token",
    kind: "slack-token",
    source:
      "gitleaks slack-bot-token, slack-user-token, slack-app-token, slack-legacy-token, slack-config-access-token; secretlint @secretlint/secretlint-rule-slack",
    pattern: /\b(?:xox[abeoprs]|xapp)-[A-Za-z0-9-]{10,250}/g,
  },
  {
    id: "slack-webhook",
    kind: "slack-webhook",
    source: "gitleaks slack-webhook-url; secretlint @secretlint/secretlint-rule-slack (IncomingWebhooks)",
    pattern: /hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9+/]{20,120}/g,
  },
  {
    id: "stripe-key",
    kind: "stripe-key",
    source: "gitleaks stripe-access-token",
    pattern: /\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,255}/g,
  },
  {
    id: "anthropic-key",
    kind: "anthropic-key",
    source: "gitleaks anthropic-api-key, anthropic-admin-api-key; secretlint @secretlint/secretlint-rule-anthropic",
    pattern: /\bsk-ant-(?:api|admin)[0-9]{2}-[\w-]{20,255}/g,
  },
  {
    id: "openai-key",
    kind: "openai-key",
    source: "gitleaks openai-api-key; secretlint @secretlint/secretlint-rule-openai",
    pattern: /\bsk-(?:(?:proj|svcacct|admin)-[\w-]{20,255}|[A-Za-z0-9]{20,255})/g,
  },
  {
    id: "webhook-secret",
    kind: "webhook-secret",
    source: "Standard Webhooks signing secrets (this service's own whsec_ secrets)",
    pattern: /\bwhsec_[A-Za-z0-9+/=]{16,512}/g,
  },
  {
    // Basic credentials are base64 (length a multiple of 4): "Basic functionality" is prose, not a credential.
    id: "bearer",
    kind: "bearer",
    source: "RFC 6750 (Bearer) and RFC 7617 (Basic) Authorization credentials",
    pattern: /\b(Bearer|bearer|BEARER|Basic)\s{1,16}([A-Za-z0-9._~+/-]{12,8192}={0,2})/g,
    replace: (match, [scheme, credentials]) =>
      scheme === "Basic" && !(credentials.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(credentials))
        ? match
        : marker("bearer"),
  },
  {
    // Starts at the keyword: a longer name before it (GITHUB_TOKEN, db.password) stays in the text.
    // A value that an earlier rule already redacted keeps its more specific marker.
    id: "assignment",
    kind: "secret",
    source: "gitleaks generic-api-key (keywords and separators, simplified)",
    pattern:
      /(password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)([\w.-]{0,40}["']?\s{0,8}(?::=|=>|[:=])\s{0,8})("[^"\n]{0,256}"|'[^'\n]{0,256}'|[^\s,;]{1,256})/gi,
    replace: (match, [keyword, separator, value]) =>
      /^["']?\[REDACTED:/.test(value) ? match : `${keyword}${separator}${marker("secret")}`,
  },
  {
    // RFC 5321 limits: a local part of at most 64 characters, a domain of at most 253.
    id: "email",
    kind: "email",
    source: "RFC 5321 address shape (local part ≤ 64, domain ≤ 253 characters)",
    pattern: /(^|[^\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}/g,
    replace: afterDelimiter("email"),
  },
  {
    // A whole word of 40 or more hex digits (SHA-1 and longer digests, hex-encoded keys).
    id: "hex-blob",
    kind: "blob",
    source: "this service (ADR 0004: long hex runs)",
    pattern: /[A-Fa-f0-9]{16}[A-Fa-f0-9]*/g,
    replace: (match, _groups, before, after) =>
      match.length >= 40 && !isWordChar(before) && !isWordChar(after) ? marker("blob") : match,
  },
  {
    // 64 or more base64 characters (dumped screenshots, encoded credentials).
    id: "base64-blob",
    kind: "blob",
    source: "this service (ADR 0004: long base64 runs)",
    pattern: /[A-Za-z0-9+/]{16}[A-Za-z0-9+/]*={0,2}/g,
    replace: (match) => (match.replace(/=+$/, "").length >= 64 ? marker("blob") : match),
  },
];

export function redact(text: string): string {
  let out = text;
  for (const rule of REDACTION_RULES) {
    const { kind, replace } = rule;
    out = out.replace(rule.pattern, (match: string, ...rest: unknown[]) => {
      if (!replace) return marker(kind);
      // rest: the capture groups, then the offset and the whole string (no named groups are used).
      const input = rest[rest.length - 1] as string;
      const offset = rest[rest.length - 2] as number;
      const groups = rest.slice(0, -2) as string[];
      return replace(match, groups, input.charAt(offset - 1), input.charAt(offset + match.length));
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
