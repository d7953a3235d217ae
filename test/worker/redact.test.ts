// Runs inside workerd: redaction is what the Worker does to failure output before storing it
// (docs/adr/0004-failure-details-privacy.md, docs/redaction-rules.md). Linear time is proven
// elsewhere: test/node/redact-redos.test.ts (recheck) and `npm run bench:redact`.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../src/contract/ingestion";
import { REDACTION_RULES, redact, redactAndCap } from "../../src/ingestion/redact";

const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "0123456789";
const ALNUM = UPPER + LOWER + DIGITS;
const HEX = "0123456789abcdef";

/**
 * A fake, correctly shaped value: deterministic characters from `alphabet`.
 * Secrets are assembled from a prefix and this at run time, so the repository
 * holds nothing a secret scanner would take for a real key.
 */
function fake(length: number, alphabet = ALNUM, seed = length): string {
  let state = seed * 7919 + 17;
  let out = "";
  for (let i = 0; i < length; i++) {
    state = (state * 48271) % 2147483647; // MINSTD
    out += alphabet[state % alphabet.length];
  }
  return out;
}

const join = (...parts: string[]) => parts.join("");
const jwt = join("eyJ", "hbGciOiJIUzI1NiJ9", ".", "eyJ", "zdWIiOiIxMjM0NTY3ODkwIn0", ".", fake(43, `${ALNUM}-_`));
const pemBody = Array.from({ length: 6 }, (_, i) => fake(64, `${ALNUM}+/`, i + 1)).join("\n");

/** Per rule: text containing what it redacts, and the text stored. */
const EXAMPLES: Record<string, [input: string, stored: string][]> = {
  "private-key": [
    [
      join("key: -----BEGIN ", "RSA PRIVATE KEY-----\n", pemBody, "\n-----END ", "RSA PRIVATE KEY-----\nloaded"),
      "key: [REDACTED:private-key]\nloaded",
    ],
    [
      join("-----BEGIN ", "OPENSSH PRIVATE KEY-----\\n", pemBody, "\\n-----END ", 'OPENSSH PRIVATE KEY-----\\n" }'),
      '[REDACTED:private-key]\\n" }',
    ],
    [
      join("-----BEGIN ", "PGP PRIVATE KEY BLOCK-----\n\n", pemBody, "\n-----END ", "PGP PRIVATE KEY BLOCK-----"),
      "[REDACTED:private-key]",
    ],
  ],
  "url-credentials": [
    [
      join("connect postgres://app:", fake(14), "@db.internal:5432/app failed"),
      "connect postgres://[REDACTED:credentials]@db.internal:5432/app failed",
    ],
    [
      join("GET https://x-access-token:", fake(20), "@github.com/o/r.git"),
      "GET https://[REDACTED:credentials]@github.com/o/r.git",
    ],
  ],
  jwt: [
    [`set-cookie: session=${jwt}; HttpOnly`, "set-cookie: session=[REDACTED:jwt]; HttpOnly"],
    [`${jwt}\n`, "[REDACTED:jwt]\n"],
  ],
  "github-token": [
    [join("used ", "ghp", "_", fake(36), " to clone"), "used [REDACTED:github-token] to clone"],
    [join("gho", "_", fake(36, ALNUM, 2)), "[REDACTED:github-token]"],
    [join("token ", "ghs", "_", fake(36, ALNUM, 3), "."), "token [REDACTED:github-token]."],
    [join("github_pat", "_", fake(22), "_", fake(59)), "[REDACTED:github-token]"],
  ],
  "github-app-installation-token": [
    [join("ghs", "_", "1234567", "_", jwt.replaceAll("eyJ", "eyK"), " expired"), "[REDACTED:github-token] expired"],
  ],
  "gitlab-token": [
    [join("PRIVATE-TOKEN: ", "glpat", "-", fake(20, `${ALNUM}_-`)), "PRIVATE-TOKEN: [REDACTED:gitlab-token]"],
    [join("glpat", "-", fake(27), ".", "01", fake(7, LOWER + DIGITS)), "[REDACTED:gitlab-token]"],
    [join("runner ", "glrt", "-t1_", fake(27)), "runner [REDACTED:gitlab-token]"],
    [join("GR1348941", fake(20)), "[REDACTED:gitlab-token]"],
  ],
  "google-api-key": [
    [join("?key=", "AIza", "Sy", fake(33, `${ALNUM}-_`), "&q=x"), "?key=[REDACTED:google-api-key]&q=x"],
  ],
  "npm-token": [
    [
      join("//registry.npmjs.org/:_authToken=", "npm", "_", fake(36)),
      "//registry.npmjs.org/:_authToken=[REDACTED:npm-token]",
    ],
  ],
  "aws-access-key": [
    [join("AccessKeyId: ", "AKIA", fake(16, UPPER + DIGITS)), "AccessKeyId: [REDACTED:aws-key]"],
    [join("ASIA", fake(16, `${UPPER}234567`)), "[REDACTED:aws-key]"],
  ],
  "aws-secret-key": [
    [
      join("aws_", "secret_access_key", " = ", fake(40, `${ALNUM}/+`)),
      "aws_secret_access_key = [REDACTED:aws-secret-key]",
    ],
    [
      join('{ "SecretAccess', 'Key": "', fake(40, `${ALNUM}/+`, 9), '" }'),
      '{ "SecretAccessKey": "[REDACTED:aws-secret-key]" }',
    ],
    [join("AWS_SECRET_ACCESS_KEY: ", fake(40, `${ALNUM}/+`, 5)), "AWS_SECRET_ACCESS_KEY: [REDACTED:aws-secret-key]"],
  ],
  "slack-token": [
    [join("xoxb", "-", fake(12, DIGITS), "-", fake(13, DIGITS), "-", fake(24)), "[REDACTED:slack-token]"],
    [
      join("xoxp", "-", fake(11, DIGITS), "-", fake(12, DIGITS), "-", fake(13, DIGITS), "-", fake(32, HEX)),
      "[REDACTED:slack-token]",
    ],
    [
      join("xapp", "-1-", fake(11, UPPER + DIGITS), "-", fake(13, DIGITS), "-", fake(64, HEX)),
      "[REDACTED:slack-token]",
    ],
  ],
  "slack-webhook": [
    [
      join(
        "POST https://hooks.slack.com/services/T",
        fake(8, UPPER + DIGITS),
        "/B",
        fake(10, UPPER + DIGITS),
        "/",
        fake(24),
      ),
      "POST https://[REDACTED:slack-webhook]",
    ],
  ],
  "stripe-key": [
    [join("Stripe.apiKey = ", "sk", "_live_", fake(24)), "Stripe.apiKey = [REDACTED:stripe-key]"],
    [join("rk", "_live_", fake(99)), "[REDACTED:stripe-key]"],
    [join("sk", "_test_", fake(24, ALNUM, 4)), "[REDACTED:stripe-key]"],
  ],
  "anthropic-key": [
    [join("x-api-key: ", "sk-ant-", "api03-", fake(93, `${ALNUM}-_`), "AA"), "x-api-key: [REDACTED:anthropic-key]"],
  ],
  "openai-key": [
    [join("sk-", "proj-", fake(74, `${ALNUM}-_`), "T3Blbk", "FJ", fake(74, `${ALNUM}-_`, 3)), "[REDACTED:openai-key]"],
    [
      join("OPENAI key sk-", fake(20), "T3Blbk", "FJ", fake(20, ALNUM, 8), " rejected"),
      "OPENAI key [REDACTED:openai-key] rejected",
    ],
    [join("sk-", "svcacct-", fake(58, `${ALNUM}-_`)), "[REDACTED:openai-key]"],
  ],
  "webhook-secret": [[join("whsec", "_", fake(44, `${ALNUM}+/`)), "[REDACTED:webhook-secret]"]],
  bearer: [
    [join("Authorization: Bearer ", fake(40, `${ALNUM}._-`)), "Authorization: [REDACTED:bearer]"],
    [join("authorization: bearer ", fake(32)), "authorization: [REDACTED:bearer]"],
    [join("Authorization: Basic ", btoa(join("user:", "hunter2"))), "Authorization: [REDACTED:bearer]"],
  ],
  assignment: [
    ["DB_PASSWORD=hunter2 next", "DB_PASSWORD=[REDACTED:secret] next"],
    ['{"api_key": "abc123", "n": 1}', '{"api_key": [REDACTED:secret], "n": 1}'],
    ["password: 'correct horse battery staple'", "password: [REDACTED:secret]"],
    ["client.secret => s3cr3t;", "client.secret => [REDACTED:secret];"],
  ],
  email: [
    ["login as dev.ops+ci@example.co.uk failed", "login as [REDACTED:email] failed"],
    ["<jane_doe@mail.example.com>", "<[REDACTED:email]>"],
    ["to: a@b.io, c@d.io", "to: [REDACTED:email], [REDACTED:email]"],
  ],
  "hex-blob": [
    [`sha1 ${fake(40, HEX)} differs`, "sha1 [REDACTED:blob] differs"],
    [`digest=${fake(64, HEX, 3)}`, "digest=[REDACTED:blob]"],
  ],
  "base64-blob": [
    [`screenshot: ${fake(200, `${ALNUM}+/`)}==`, "screenshot: [REDACTED:blob]"],
    [`data:image/png;base64,${fake(64, `${ALNUM}+/`, 2)}`, "data:image/png;base64,[REDACTED:blob]"],
  ],
};

/** Ordinary failure output that no rule may touch. */
const ORDINARY = [
  "AssertionError: expected 200 to equal 500",
  "    at Object.<anonymous> (/home/runner/work/app/app/src/orders/order.test.ts:42:17)",
  "\tat com.example.orders.OrderServiceTest.placesOrder(OrderServiceTest.java:88)",
  'E   assert response.json() == {"id": 7, "name": "widget"}',
  "commit 3f2a1b9 on branch feature/login: 12 passed, 1 failed",
  "Basic functionality works; see https://example.com/docs/page?id=12#top",
  "java.lang.Object@1a2b3c4d is not an Order",
  "skipped: sk-learn not installed; retry with --no-cache",
  "Timeout of 5000ms exceeded waiting for http://localhost:3000/health",
  `a hex word one short of a blob: ${fake(39, HEX)}`,
  `a base64 run one short: ${fake(63, `${ALNUM}+/`)}`,
  `hex inside a longer word stays: x${fake(48, HEX)}`,
  "emoji 😀 and accents: café, naïve, 日本語",
];

describe("redact: one rule at a time", () => {
  it("every rule has examples, and every example names a rule", () => {
    expect(Object.keys(EXAMPLES).sort()).toEqual(REDACTION_RULES.map((rule) => rule.id).sort());
  });

  it("every rule's marker is [REDACTED:<kind>] and its pattern is global", () => {
    for (const rule of REDACTION_RULES) {
      expect(rule.kind, rule.id).toMatch(/^[a-z0-9-]+$/);
      expect(rule.pattern.global, rule.id).toBe(true);
      expect(rule.source.length, rule.id).toBeGreaterThan(0);
    }
  });

  describe.each(REDACTION_RULES.map((rule) => [rule.id, rule] as const))("%s", (id, rule) => {
    it.each(EXAMPLES[id] ?? [])("%j", (input, stored) => {
      expect(redact(input)).toBe(stored);
      expect(stored).toContain(`[REDACTED:${rule.kind}]`);
    });

    it("matches its examples by itself (not only through another rule)", () => {
      for (const [input] of EXAMPLES[id] ?? []) {
        rule.pattern.lastIndex = 0;
        expect(rule.pattern.test(input), input).toBe(true);
        rule.pattern.lastIndex = 0;
      }
    });
  });
});

describe("redact: the whole text", () => {
  it("redacts a private key block cut off by the log to the end of the text", () => {
    const text = join("dump:\n-----BEGIN ", "PRIVATE KEY-----\n", pemBody.slice(0, 100), "\n(log truncated)");
    expect(redact(text)).toBe("dump:\n[REDACTED:private-key]");
  });

  it.each(ORDINARY)("leaves ordinary output alone: %s", (line) => {
    expect(redact(line)).toBe(line);
  });

  it("redacts every secret in a failure message and keeps the rest", () => {
    const message = [
      "Error: login as dev@example.com failed",
      join("  token=", "ghp", "_", fake(36), " rejected by https://api.github.com"),
      join("  retrying with postgres://app:", fake(12), "@db.internal/app"),
      "  at login (src/auth.ts:12:3)",
    ].join("\n");
    expect(redact(message)).toBe(
      [
        "Error: login as [REDACTED:email] failed",
        "  token=[REDACTED:github-token] rejected by https://api.github.com",
        "  retrying with postgres://[REDACTED:credentials]@db.internal/app",
        "  at login (src/auth.ts:12:3)",
      ].join("\n"),
    );
  });

  it("keeps the more specific marker when a named value is also a known token", () => {
    expect(redact(join("GITHUB_TOKEN=", "ghp", "_", fake(36)))).toBe("GITHUB_TOKEN=[REDACTED:github-token]");
    expect(redact(join('"token": "', "xoxb", "-", fake(12, DIGITS), "-", fake(24), '"'))).toBe(
      '"token": "[REDACTED:slack-token]"',
    );
  });

  it("is idempotent: redacted text has nothing left to redact", () => {
    const all = Object.values(EXAMPLES)
      .flat()
      .map(([input]) => input)
      .join("\n");
    const once = redact(all);
    expect(redact(once)).toBe(once);
  });

  it("leaves no example's secret behind, whatever surrounds it", () => {
    const samples = Object.values(EXAMPLES)
      .flat()
      .map(([input, stored]) => [input, stored] as const);
    fc.assert(
      fc.property(
        fc.constantFrom(...samples),
        fc.constantFrom(" ", "\n", "\t", "(", "'", '"', ",", "> "),
        (sample, gap) => {
          const [input, stored] = sample;
          expect(redact(`start${gap}${input}${gap}end`)).toBe(`start${gap}${stored}${gap}end`);
        },
      ),
    );
  });
});

/** True when no UTF-16 surrogate is unpaired (String.prototype.isWellFormed, ES2024). */
function isWellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (code >= 0xdc00 && code <= 0xdfff) return false;
  }
  return true;
}

describe("redactAndCap: at most 10,000 characters stored", () => {
  const MARK = "\n…[truncated]";

  it("caps at the spec's 10,000 characters", () => {
    expect(LIMITS.failureDetailsChars).toBe(10_000);
  });

  it("keeps text up to the cap whole", () => {
    const text = "word ".repeat(LIMITS.failureDetailsChars / 5);
    expect(redactAndCap(text, LIMITS.failureDetailsChars)).toBe(text);
  });

  it("cuts longer text to exactly the cap, ending with the truncation mark", () => {
    const text = "line of output\n".repeat(2000);
    const capped = redactAndCap(text, LIMITS.failureDetailsChars);
    expect(capped).toHaveLength(LIMITS.failureDetailsChars);
    expect(capped.endsWith(MARK)).toBe(true);
    expect(text.startsWith(capped.slice(0, -MARK.length))).toBe(true);
  });

  it("redacts before cutting: a secret across the cut is not left half visible", () => {
    const token = join("ghp", "_", fake(36));
    const keep = LIMITS.failureDetailsChars - MARK.length;
    // In the raw text the token straddles the cut: its first 10 characters would be kept.
    const text = `${"ab ".repeat(Math.floor((keep - 10) / 3))}${" ".repeat((keep - 10) % 3)}${token} ${"cd ".repeat(100)}`;
    expect(text.indexOf(token)).toBe(keep - 10);
    const capped = redactAndCap(text, LIMITS.failureDetailsChars);
    expect(capped).toHaveLength(LIMITS.failureDetailsChars);
    expect(capped).not.toContain(token.slice(0, 6));
    expect(capped).toContain("[REDACTED:");
  });

  it("stays within the cap when markers are longer than what they replace", () => {
    const capped = redactAndCap("a@b.io ".repeat(3000), LIMITS.failureDetailsChars);
    expect(capped.length).toBeLessThanOrEqual(LIMITS.failureDetailsChars);
    expect(capped).not.toContain("a@b.io");
  });

  it("never cuts inside a surrogate pair", () => {
    const emoji = "😀"; // two UTF-16 code units
    const keep = LIMITS.failureDetailsChars - MARK.length;
    for (const pad of [0, 1]) {
      const text = "x".repeat(pad) + emoji.repeat(LIMITS.failureDetailsChars);
      const capped = redactAndCap(text, LIMITS.failureDetailsChars);
      expect(isWellFormed(capped), `pad ${pad}`).toBe(true);
      expect(capped.endsWith(MARK)).toBe(true);
      // The pair that would be split is dropped whole: one code unit short of the cap.
      expect(capped.length).toBe((keep - pad) % 2 === 0 ? LIMITS.failureDetailsChars : LIMITS.failureDetailsChars - 1);
    }
  });

  it("for any text: within the cap, well-formed if the input was, a prefix of the redacted text", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 400 }),
        fc.integer({ min: MARK.length + 1, max: 300 }),
        (text, max) => {
          const capped = redactAndCap(text, max);
          const redacted = redact(text);
          expect(capped.length).toBeLessThanOrEqual(max);
          if (isWellFormed(text)) expect(isWellFormed(capped)).toBe(true);
          if (redacted.length <= max) expect(capped).toBe(redacted);
          else expect(redacted.startsWith(capped.slice(0, -MARK.length))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
