import { z } from "zod";

/**
 * The upload payload: anchorpipe's field names (snake_case at the top,
 * camelCase per result) plus the fields this service adds (reports,
 * rerunCount, suite, a honoured idempotency_key). Unknown fields are
 * rejected rather than silently dropped.
 */

export const MAX_RESULTS = 10_000;
export const MAX_FAILURE_DETAILS = 10_000;
/** How far a result's startedAt may lie in the future (clock skew between CI and us). */
export const MAX_FUTURE_MS = 24 * 60 * 60 * 1000;

export const FRAMEWORKS = ["junit", "jest", "pytest", "playwright", "mocha", "vitest", "go", "unknown"] as const;

const jsonObject = z
  .record(z.string(), z.unknown())
  .refine((value) => JSON.stringify(value).length <= 16_384, "must serialise to at most 16384 characters");

/** Built once per isolate; the clock-dependent check (not too far in the future) is futureStartIssues. */
const testResultSchema = z.strictObject({
  path: z.string().min(1).max(1000),
  name: z.string().min(1).max(1000),
  status: z.enum(["pass", "fail", "skip"]),
  startedAt: z.iso.datetime({ offset: true, local: true }),
  durationMs: z.number().int().min(0).max(2_147_483_647).nullish(),
  failureDetails: z.string().max(MAX_FAILURE_DETAILS).nullish(),
  tags: z.array(z.string().min(1).max(100)).max(50).nullish(),
  metadata: jsonObject.nullish(),
  rerunCount: z.number().int().min(0).max(1000).nullish(),
  suite: z.string().min(1).max(1000).nullish(),
});

export const payloadSchema = z
  .strictObject({
    repo_id: z.uuid(),
    commit_sha: z.string().regex(/^[0-9a-fA-F]{40}$/, "must be 40 hexadecimal characters"),
    run_id: z.string().min(1).max(255),
    framework: z.enum(FRAMEWORKS),
    tests: z.array(testResultSchema).min(1).max(MAX_RESULTS).optional(),
    reports: z
      .array(z.strictObject({ format: z.literal("junit"), content: z.string().min(1) }))
      .min(1)
      .max(100)
      .optional(),
    branch: z.string().min(1).max(255).nullish(),
    pull_request: z.union([z.string().min(1).max(255), z.number().int().nonnegative().transform(String)]).nullish(),
    environment: z
      .record(z.string().min(1).max(100), z.string().max(1000))
      .refine((env) => Object.keys(env).length <= 50, "must have at most 50 entries")
      .nullish(),
    metadata: jsonObject.nullish(),
    idempotency_key: z.string().min(1).max(255).nullish(),
  })
  .superRefine((payload, ctx) => {
    if ((payload.tests === undefined) === (payload.reports === undefined)) {
      ctx.addIssue({ code: "custom", path: ["tests"], message: "exactly one of tests and reports is required" });
    }
  });

export type Payload = z.output<typeof payloadSchema>;
export type TestResultInput = NonNullable<Payload["tests"]>[number];

/** Re-checks results that came out of a parsed report against the same rules as `tests`. */
export const resultsSchema = z.array(testResultSchema).max(MAX_RESULTS);

/** Results that claim to start more than a day after `now` (CI clocks may be off, not that far). */
export function futureStartIssues(
  results: { startedAt: string }[],
  now: Date,
  prefix: (string | number)[],
): IssueDetail[] {
  const limit = now.getTime() + MAX_FUTURE_MS;
  return results
    .flatMap((result, index) => (Date.parse(result.startedAt) > limit ? [index] : []))
    .slice(0, 50)
    .map((index) => ({
      path: [...prefix, index, "startedAt"].join("."),
      message: "must not be more than a day in the future",
    }));
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
