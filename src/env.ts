import { z } from "zod";

/**
 * The Worker's bindings and secrets, validated once per isolate. Anything
 * invalid fails closed: every request gets one clear 500 instead of a crash
 * deep inside a handler.
 */
export const envSchema = z.object({
  /** Neon connection string (a secret). Absent means the database is not configured. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection string")
    .optional(),
  /**
   * A read replica's connection string (a secret), as the `anchorpipe_readonly` role. When set, the read
   * endpoints of the API query it and writes keep DATABASE_URL.
   */
  DATABASE_URL_READONLY: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection string")
    .optional(),
  /**
   * Dev and test only: "true" sends SQL-over-HTTP to the local gateway at the
   * host and port of DATABASE_URL instead of to Neon.
   */
  NEON_LOCAL_GATEWAY: z.enum(["true", "false"]).default("false"),
  ENVIRONMENT: z.enum(["development", "test", "production"]).default("production"),
  /**
   * Key-encryption keys for stored HMAC secrets (a secret): comma-separated
   * `<version>:<base64 of 32 bytes>`; the highest version encrypts, every
   * listed version decrypts, so the key can be rotated. Absent means ingestion
   * cannot verify signatures.
   */
  HMAC_KEK: z
    .string()
    .regex(/^\d+:[A-Za-z0-9+/]{43}=(,\d+:[A-Za-z0-9+/]{43}=)*$/, "must be <version>:<base64 32-byte key>[,…]")
    .optional(),
  /**
   * Largest accepted ingestion body in bytes. The default, 5 MiB, is the uploader's split size and leaves
   * room in a Worker's 128 MB (README, Performance: what a maximal upload costs, measured).
   */
  INGESTION_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(100 * 1024 * 1024)
    .default(5 * 1024 * 1024),
  /**
   * The operator's bearer token for GET /api/metrics (a secret: `wrangler secret put OPERATOR_TOKEN`).
   * Absent means the metrics endpoint answers 404. At least 32 characters so it cannot be guessed.
   */
  OPERATOR_TOKEN: z.string().min(32, "must be at least 32 characters").optional(),
  /**
   * The GitHub App (README, GitHub App). Its webhook secret (a secret): absent means POST /api/webhooks/github
   * answers 500 misconfigured, as ingestion does without HMAC_KEK. At least 16 characters.
   */
  GITHUB_WEBHOOK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  /** The App's id (a number, from its settings page). */
  GITHUB_APP_ID: z
    .string()
    .regex(/^[1-9]\d{0,19}$/, "must be the App's numeric id")
    .optional(),
  /** The App's private key (a secret), PEM as GitHub downloads it (PKCS#1) or PKCS#8. */
  GITHUB_APP_PRIVATE_KEY: z
    .string()
    .regex(/^-----BEGIN (RSA )?PRIVATE KEY-----/, "must be a PEM private key")
    .optional(),
  /** GitHub's REST API; the tests point it at a local fake. */
  GITHUB_API_URL: z.url({ protocol: /^https?$/ }).default("https://api.github.com"),
  /**
   * Days a data subject request has before it is due (due_at = requested_at + this many days). The default,
   * 30, is GDPR's one month (art. 12(3)); a shorter internal deadline is fine, a longer one is not lawful
   * without an extension the person was told about, so at most 90 (the extended three months).
   */
  DSR_DEADLINE_DAYS: z.coerce.number().int().min(1).max(90).default(30),
});

export type Config = z.infer<typeof envSchema>;

/** What wrangler hands the Worker, before validation (declared in worker-env.d.ts). */
export type Bindings = Cloudflare.Env;

const parsed = new WeakMap<object, Config>();

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid Worker configuration: ${issues.join("; ")}`);
    this.name = "ConfigError";
  }
}

export function loadConfig(env: Bindings): Config {
  const cached = parsed.get(env);
  if (cached) return cached;
  const result = envSchema.safeParse(env);
  if (!result.success) {
    // Names of the bad bindings only: their values may be secrets.
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));
  }
  parsed.set(env, result.data);
  return result.data;
}
