import { z } from "zod";

/**
 * The ingestion wire contract (spec/ingestion.md): what a CI client sends to
 * POST /api/ingestion and how it signs it. The Worker validates with these
 * schemas and the uploader validates with the same ones before sending, so a
 * rule is written once.
 *
 * This file imports nothing but zod and uses no Node or Workers API: it is
 * bundled into the Worker and into the installable uploader alike.
 */

export const INGESTION_PATH = "/api/ingestion";

/** Header names (lower case; HTTP header names are case-insensitive). */
export const HEADERS = {
  authorization: "authorization",
  /** v1 (anchorpipe): hex HMAC-SHA256 of the body. */
  v1Signature: "x-fr-sig",
  /** v2 (Standard Webhooks). */
  webhookId: "webhook-id",
  webhookTimestamp: "webhook-timestamp",
  webhookSignature: "webhook-signature",
} as const;

export const SIGNATURE_SCHEMES = ["v1", "v2"] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

/** Standard Webhooks' tolerance for the sender's clock, in seconds. */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;
/**
 * Signature entries accepted in one `webhook-signature` header. Standard
 * Webhooks allows several (one per secret during a rotation); more than this
 * is refused before any MAC is computed.
 */
export const MAX_SIGNATURE_ENTRIES = 8;
export const WEBHOOK_SECRET_PREFIX = "whsec_";
/** A webhook-id: it goes into a header and is the idempotency key. */
export const WEBHOOK_ID_PATTERN = /^[\x21-\x7e]{1,255}$/;

export const LIMITS = {
  /** Default of INGESTION_MAX_BODY_BYTES and the uploader's split size. */
  defaultMaxBodyBytes: 5 * 1024 * 1024,
  results: 10_000,
  reports: 100,
  failureDetailsChars: 10_000,
  /** Characters of a metadata object once serialised as JSON. */
  metadataChars: 16_384,
  /** Nesting of a metadata object (PostgreSQL's jsonb and every JSON encoder stay far from their stacks). */
  metadataDepth: 32,
  /**
   * UTF-8 bytes of a test's path and name together. Both are in the unique
   * btree index of test_cases, whose entries PostgreSQL caps at about 2.7 kB.
   */
  identityBytes: 2_400,
  tags: 50,
  tagChars: 100,
  environmentEntries: 50,
  /** How far a result's startedAt may lie in the future (CI clocks may be off, not that far). */
  futureStartMs: 24 * 60 * 60 * 1000,
  /** The earliest startedAt accepted: no CI result predates the Unix epoch. */
  earliestStart: "1970-01-01T00:00:00Z",
  /** test_runs.duration_ms is an int4. */
  maxDurationMs: 2_147_483_647,
  maxRerunCount: 1000,
} as const;

export const FRAMEWORKS = ["junit", "jest", "pytest", "playwright", "mocha", "vitest", "go", "unknown"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/** Report formats parsed at the edge (`reports: [{ format, content }]`); docs/report-formats.md. */
export const REPORT_FORMATS = [
  "junit",
  "trx",
  "nunit",
  "jest-json",
  "mocha-json",
  "playwright-json",
  "pytest-json",
  "go-test-json",
  "rspec-json",
  "dart-json",
  "ctrf",
] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/**
 * The `framework` an upload of one report format declares. A test case is keyed by its framework too, so the
 * uploader and the GitHub App must label the same report alike.
 */
export const FORMAT_FRAMEWORKS: Record<ReportFormat, Framework> = {
  junit: "junit",
  trx: "unknown",
  nunit: "unknown",
  "jest-json": "jest",
  "mocha-json": "mocha",
  "playwright-json": "playwright",
  "pytest-json": "pytest",
  "go-test-json": "go",
  "rspec-json": "unknown",
  "dart-json": "unknown",
  ctrf: "unknown",
};

/** Other names people give the same formats (vitest writes jest's JSON; flutter --machine is dart's). */
export const FORMAT_ALIASES: Readonly<Record<string, ReportFormat>> = {
  "vitest-json": "jest-json",
  "flutter-json": "dart-json",
  nunit3: "nunit",
  "xunit-trx": "trx",
};

export function isReportFormat(value: string): value is ReportFormat {
  return (REPORT_FORMATS as readonly string[]).includes(value);
}

/** A format name or one of its aliases, as the canonical name; null when it names no format. */
export function resolveFormat(name: string): ReportFormat | null {
  if (isReportFormat(name)) return name;
  return Object.hasOwn(FORMAT_ALIASES, name) ? (FORMAT_ALIASES[name] ?? null) : null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (value: string): boolean => UUID.test(value);

/** The one spelling of an id inside the service: lower case. Null when it is not a uuid. */
export function canonicalUuid(value: string): string | null {
  return isUuid(value) ? value.toLowerCase() : null;
}

/**
 * Text PostgreSQL can store: no NUL (text and jsonb refuse it) and no
 * unpaired UTF-16 surrogate (it has no UTF-8 encoding). Each alternative looks
 * at one or two characters, so the scan is linear.
 */
const UNSTORABLE_SOURCE = "\\u0000|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]";
const UNSTORABLE = new RegExp(UNSTORABLE_SOURCE);
const UNSTORABLE_ALL = new RegExp(UNSTORABLE_SOURCE, "g");

export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value);
}

/** What `isStorableText` refuses, said once for every field. */
export const UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired UTF-16 surrogates";

/** NUL becomes U+FFFD and unpaired surrogates become U+FFFD: used for failure output, which CI really fills with them. */
export function cleanText(value: string): string {
  return value.replace(UNSTORABLE_ALL, "\ufffd");
}

const storable = () => z.string().refine(isStorableText, UNSTORABLE_MESSAGE);

const utf8Length = (value: string): number => new TextEncoder().encode(value).length;

/**
 * Whether a JSON value can go into jsonb: every key and string storable, and
 * nested at most `maxDepth` deep. Walked with an explicit stack, so a deeply
 * nested body cannot exhaust the call stack. Returns the first problem.
 */
export function jsonProblem(value: unknown, maxDepth: number = LIMITS.metadataDepth): string | null {
  const stack: [unknown, number, string][] = [[value, 0, ""]];
  while (stack.length > 0) {
    const [current, depth, at] = stack.pop() as [unknown, number, string];
    if (typeof current === "string") {
      if (!isStorableText(current)) return `${UNSTORABLE_MESSAGE} (at ${at || "the top"})`;
      continue;
    }
    if (current === null || typeof current !== "object") continue;
    if (depth >= maxDepth) return `must be nested at most ${maxDepth} levels deep`;
    const entries = Array.isArray(current) ? current.entries() : Object.entries(current);
    for (const [key, child] of entries) {
      if (typeof key === "string" && !isStorableText(key)) return `keys ${UNSTORABLE_MESSAGE}`;
      stack.push([child, depth + 1, `${at}.${String(key)}`]);
    }
  }
  return null;
}

const jsonObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const problem = jsonProblem(value);
  if (problem) {
    ctx.addIssue({ code: "custom", message: problem });
    return;
  }
  if (JSON.stringify(value).length > LIMITS.metadataChars) {
    ctx.addIssue({ code: "custom", message: `must serialise to at most ${LIMITS.metadataChars} characters` });
  }
});

const earliestStartMs = Date.parse(LIMITS.earliestStart);

/** ISO 8601 with a time; without a zone it is UTC. */
export function startedAtMs(value: string): number {
  return Date.parse(/(Z|[+-]\d{2}:?\d{2})$/i.test(value) ? value : `${value}Z`);
}

const startedAt = z.iso
  .datetime({ offset: true, local: true })
  // A value the format check refuses parses to NaN and is not reported twice.
  .refine((value) => !(startedAtMs(value) < earliestStartMs), `must not be before ${LIMITS.earliestStart}`);

export const testResultSchema = z
  .strictObject({
    path: storable().min(1).max(1000),
    name: storable().min(1).max(1000),
    status: z.enum(["pass", "fail", "skip"]),
    startedAt,
    durationMs: z.number().int().min(0).max(LIMITS.maxDurationMs).nullish(),
    /** Cleaned (NUL → U+FFFD), not refused: real CI output contains NUL. Redacted and capped by the Worker. */
    failureDetails: z.string().max(LIMITS.failureDetailsChars).transform(cleanText).nullish(),
    tags: z.array(storable().min(1).max(LIMITS.tagChars)).max(LIMITS.tags).nullish(),
    metadata: jsonObject.nullish(),
    rerunCount: z.number().int().min(0).max(LIMITS.maxRerunCount).nullish(),
    suite: storable().min(1).max(1000).nullish(),
  })
  .superRefine((result, ctx) => {
    if (typeof result.path !== "string" || typeof result.name !== "string") return;
    if (utf8Length(result.path) + utf8Length(result.name) > LIMITS.identityBytes) {
      ctx.addIssue({
        code: "custom",
        path: ["name"],
        message: `path and name together must be at most ${LIMITS.identityBytes} bytes of UTF-8`,
      });
    }
  });

export type TestResultInput = z.output<typeof testResultSchema>;

export const reportSchema = z.strictObject({
  format: z
    .string()
    .max(40)
    .transform((name, ctx) => {
      const format = resolveFormat(name);
      if (format) return format;
      ctx.addIssue({ code: "custom", message: `must be one of ${REPORT_FORMATS.join(", ")}` });
      return z.NEVER;
    }),
  content: z.string().min(1),
});

export const payloadSchema = z
  .strictObject({
    repo_id: z.uuid(),
    commit_sha: z.string().regex(/^[0-9a-fA-F]{40}$/, "must be 40 hexadecimal characters"),
    run_id: storable().min(1).max(255),
    framework: z.enum(FRAMEWORKS),
    tests: z.array(testResultSchema).min(1).max(LIMITS.results).optional(),
    reports: z.array(reportSchema).min(1).max(LIMITS.reports).optional(),
    branch: storable().min(1).max(255).nullish(),
    pull_request: z.union([storable().min(1).max(255), z.number().int().nonnegative().transform(String)]).nullish(),
    environment: z
      .record(storable().min(1).max(100), storable().max(1000))
      .refine(
        (env) => Object.keys(env).length <= LIMITS.environmentEntries,
        `must have at most ${LIMITS.environmentEntries} entries`,
      )
      .nullish(),
    metadata: jsonObject.nullish(),
    idempotency_key: storable().min(1).max(255).nullish(),
  })
  .superRefine((payload, ctx) => {
    if ((payload.tests === undefined) === (payload.reports === undefined)) {
      ctx.addIssue({ code: "custom", path: ["tests"], message: "exactly one of tests and reports is required" });
    }
  });

export type Payload = z.output<typeof payloadSchema>;
/** What a client builds before serialising (pull_request may be a number). */
export type PayloadInput = z.input<typeof payloadSchema>;

/** Results that came out of parsed reports, held to the same rules as `tests`. */
export const resultsSchema = z.array(testResultSchema).max(LIMITS.results);

/**
 * The idempotency key of an upload. v2: the webhook-id. v1: the body's
 * `idempotency_key`, or else one derived from the SHA-256 of the exact body,
 * so shards of one CI run (same run_id, different tests) are distinct uploads
 * and only a byte-identical resend is a duplicate.
 */
export function idempotencyKeyFor(
  scheme: SignatureScheme,
  values: { webhookId?: string; payloadKey?: string | null; bodySha256Hex: string },
): string {
  if (scheme === "v2" && values.webhookId) return values.webhookId;
  return values.payloadKey ?? `auto:sha256:${values.bodySha256Hex}`;
}

export interface IssueDetail {
  path: string;
  message: string;
}

/** zod issues as the error envelope's `details`: dotted paths, at most 50. */
export function issueDetails(error: z.ZodError, prefix: (string | number)[] = []): IssueDetail[] {
  return error.issues.slice(0, 50).map((issue) => ({
    path: [...prefix, ...issue.path].map(String).join(".") || "(root)",
    message: issue.message,
  }));
}
