import { z } from "@hono/zod-openapi";
import { ApiError } from "../../lib/errors";
import { ifNoneMatchHits, strongEtag } from "../../lib/etag";
import { decodeCursor, pageQuery, toPage } from "../../lib/pagination";
import {
  FLAKE_CLASSES,
  getTestScore,
  IMPACT_DESCRIPTION,
  listFlakyTests,
  NOT_SCORED_REASON,
  QUARANTINE_MAX_TESTS,
  quarantineList,
  RECENT_RUNS,
} from "../../services/flaky-reads";
import { serviceContext } from "../context";
import { apiApp, date, ERRORS, filterText, idParam, json, pageOf, route, testIdentity } from "../openapi";

/** The flake scores (spec/api.md, "Flaky tests"): the ranked list, one test's score, CI's quarantine list. */
export const flakyRoutes = apiApp();

const repoParams = z.object({ repoId: idParam("repoId") });
const classSchema = z.enum(FLAKE_CLASSES);

const classList = z
  .string()
  .max(200)
  .default("flaky,highly_flaky")
  .transform((list) => [...new Set(list.split(",").map((value) => value.trim()))])
  .pipe(z.array(classSchema).min(1))
  .openapi({
    type: "string",
    default: "flaky,highly_flaky",
    description:
      `Comma-separated classes (${FLAKE_CLASSES.join(", ")}); default \`flaky,highly_flaky\`. ` +
      "A test not scored yet is `stable` with score 0.",
  });

const flakyTestSchema = z
  .object({
    ...testIdentity,
    class: classSchema,
    score: z.number().int().min(0).max(100),
    failureProbability: z
      .object({ estimate: z.number().nullable(), lower: z.number().nullable(), upper: z.number().nullable() })
      .describe("Per-run failure probability on good code: the estimate and its 95% bounds"),
    evidence: z.object({
      runs: z.number().int().describe("Runs considered in the scoring window"),
      contradictions: z.number().int().describe("Commits with both a pass and a failure"),
      retryRecoveries: z.number().int().describe("Runs that failed and passed on a retry"),
    }),
    owners: z.array(z.string()).describe("From CODEOWNERS: the last matching line"),
    firstFlakyCommit: z.string().nullable(),
    lastRunAt: date().nullable().describe("Its newest run in a completed upload"),
  })
  .openapi("FlakyTest");

flakyRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/flaky-tests",
    tags: ["flaky tests"],
    summary: "Flaky tests, ranked",
    description:
      "`sort=score` (default): score descending, then test id. `sort=impact`: " +
      `${IMPACT_DESCRIPTION} Ties by test id. Keyset pages: a cursor continues the sort it was made by.`,
    request: {
      params: repoParams,
      query: z.object({
        class: classList,
        owner: filterText(200).optional().describe("Only tests this owner (as CODEOWNERS writes it) owns"),
        path_prefix: filterText(1000).optional().describe("Only tests whose path starts with this, literally"),
        sort: z.enum(["score", "impact"]).default("score"),
        ...pageQuery,
      }),
    },
    responses: { 200: json(pageOf(flakyTestSchema), "A page of flaky tests"), ...ERRORS },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const after = decodeCursor(query.cursor, z.tuple([z.enum(["score", "impact"]), z.string(), z.uuid()]));
    if (after && after[0] !== query.sort) {
      throw new ApiError("validation_failed", "The request is invalid.", [
        { path: "cursor", message: `was made for sort=${after[0]}` },
      ]);
    }
    if (after && !/^-?\d{1,12}(\.\d{1,6})?$/.test(after[1])) {
      throw new ApiError("validation_failed", "The request is invalid.", [
        { path: "cursor", message: "is not a cursor this list gave out" },
      ]);
    }
    const rows = await listFlakyTests(
      serviceContext(c, "read"),
      c.req.valid("param").repoId,
      { classes: query.class, owner: query.owner, pathPrefix: query.path_prefix },
      query.sort,
      { limit: query.limit + 1, after: after ? [after[1], after[2]] : null },
    );
    return c.json(
      toPage(
        rows,
        query.limit,
        ({ sortKey: _, ...item }) => item,
        (r) => [query.sort, r.sortKey, r.testId],
      ),
      200,
    );
  },
);

const testScoreSchema = z
  .object({
    ...testIdentity,
    owners: z.array(z.string()),
    scored: z.boolean().describe(`false until the test's first score: then class stable, score 0, factors null`),
    class: classSchema,
    score: z.number().int().min(0).max(100),
    factors: z
      .object({
        windowN: z.number().int(),
        runsConsidered: z.number().int(),
        passRate: z.number(),
        volatility: z.number().describe("Flip rate between consecutive runs"),
        recencyFail: z.number(),
        clustering: z.number(),
      })
      .nullable(),
    firstFlakyAt: date().nullable(),
    lastFlakyAt: date().nullable(),
    scoredAt: date().nullable(),
    explanation: z
      .record(z.string(), z.unknown())
      .describe(
        "The model's explanation (ml_prediction_data): reason, evidence, failure probability, factors and weights; " +
          `\`{ "reason": "${NOT_SCORED_REASON}" }\` before the first score`,
      ),
    recentRuns: z.array(
      z.object({
        id: z.string(),
        ingestionId: z.string(),
        status: z.enum(["pass", "fail", "skip"]),
        rerunCount: z.number().int(),
        commitSha: z.string(),
        branch: z.string().nullable(),
        durationMs: z.number().int().nullable(),
        startedAt: date(),
      }),
    ),
  })
  .openapi("TestScore");

flakyRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/tests/{testId}/score",
    tags: ["flaky tests"],
    summary: "One test's score, class, factors, whole explanation and recent runs",
    description: `Its last ${RECENT_RUNS} runs of completed uploads, newest first. A test that exists but has no score yet is 200 with \`scored: false\`.`,
    request: { params: repoParams.extend({ testId: idParam("testId") }) },
    responses: { 200: json(testScoreSchema, "The test's score"), ...ERRORS },
  }),
  async (c) => {
    const { repoId, testId } = c.req.valid("param");
    const score = await getTestScore(serviceContext(c, "read"), repoId, testId);
    if (!score) throw new ApiError("not_found", "Test not found.");
    return c.json(score, 200);
  },
);

const quarantineSchema = z
  .object({
    repoId: z.string(),
    tests: z.array(
      z.object({
        ...testIdentity,
        class: z.enum(["flaky", "highly_flaky"]),
        score: z.number().int().min(0).max(100),
        reason: z.string(),
        owners: z.array(z.string()),
      }),
    ),
  })
  .openapi("QuarantineList");

const etagHeader = {
  ETag: { schema: { type: "string" as const }, description: "Strong: quoted base64url SHA-256 of the body" },
};

flakyRoutes.openapi(
  route(
    "repo:read",
    {
      method: "get",
      path: "/repos/{repoId}/quarantine",
      tags: ["flaky tests"],
      summary: "What CI should skip or tolerate: the flaky and highly flaky tests",
      description:
        "For CI: a personal token with repo:read, or the repository's Standard Webhooks signature over the empty " +
        "body (`webhook-id`, `webhook-timestamp` within ±300 s, `webhook-signature: v1,<base64 HMAC-SHA256 of " +
        '"{id}.{timestamp}.">`, optionally `Authorization: Bearer <repo id>`), which acts as read_only. ' +
        "Broken and suspect tests are never in it. Sorted by path, then name (byte order); no timestamps, so the " +
        "body and its strong ETag change only when the list does. `If-None-Match` with the current tag (or `*`, " +
        `lists, W/ tags) is 304. At most ${QUARANTINE_MAX_TESTS} tests: beyond that the highest scores are kept ` +
        "and the answer carries `Anchorpipe-Quarantine-Truncated: true`.",
      request: { params: repoParams },
      responses: {
        200: {
          ...json(quarantineSchema, "The quarantine list"),
          headers: {
            ...etagHeader,
            "Cache-Control": { schema: { type: "string" as const }, description: "private, no-cache" },
          },
        },
        304: { description: "The list has not changed since the tag in If-None-Match", headers: etagHeader },
        ...ERRORS,
        401: { ...ERRORS[401], description: "No valid personal token or repository signature" },
      },
    },
    { signedReads: true },
  ),
  async (c) => {
    const repoId = c.req.valid("param").repoId;
    const { tests, truncated } = await quarantineList(serviceContext(c, "read"), repoId);
    const body = JSON.stringify({ repoId, tests });
    const etag = await strongEtag(body);
    const headers: Record<string, string> = { ETag: etag, "Cache-Control": "private, no-cache" };
    if (truncated) headers["Anchorpipe-Quarantine-Truncated"] = "true";
    if (ifNoneMatchHits(c.req.header("if-none-match"), etag)) return c.body(null, 304, headers);
    return c.body(body, 200, { ...headers, "Content-Type": "application/json" });
  },
);
