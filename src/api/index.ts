import { z } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import { bodyLimit } from "hono/body-limit";
import { LIMITS, payloadSchema } from "../contract/ingestion";
import { ApiError } from "../lib/errors";
import { GITHUB_WEBHOOK_MAX_BODY_BYTES } from "../services/github/webhook-payloads";
import { apiApp, errorSchema, ROUTE_ACCESS } from "./openapi";
import { codeownersRoutes } from "./routes/codeowners";
import { dataRequestRoutes } from "./routes/data-requests";
import { flakyRoutes } from "./routes/flaky";
import { identityRoutes } from "./routes/identity";
import { readRoutes } from "./routes/reads";
import { repoAdminRoutes } from "./routes/repo-admin";
import { repoRoutes } from "./routes/repos";

/**
 * The authenticated API (spec/api.md), mounted at /api, and its OpenAPI 3.1
 * document, generated from the same zod schemas that validate the requests.
 */
/** API bodies are small JSON documents; anything larger is refused before it is read. */
export const API_MAX_BODY_BYTES = 64 * 1024;
const CODEOWNERS_PATH = /^\/api\/repos\/[^/]+\/codeowners$/;

export function createApi() {
  const api = apiApp();
  const jsonBodyLimit = bodyLimit({
    maxSize: API_MAX_BODY_BYTES,
    onError: () => {
      throw new ApiError("payload_too_large", `The body exceeds the limit of ${API_MAX_BODY_BYTES} bytes.`);
    },
  });
  // A CODEOWNERS file is larger than a JSON body; its route reads it under its own cap (CODEOWNERS_LIMITS).
  api.use("*", (c, next) =>
    c.req.method === "PUT" && CODEOWNERS_PATH.test(c.req.path) ? next() : jsonBodyLimit(c, next),
  );
  api.route("/", identityRoutes);
  api.route("/", repoRoutes);
  api.route("/", repoAdminRoutes);
  api.route("/", readRoutes);
  api.route("/", codeownersRoutes);
  api.route("/", flakyRoutes);
  api.route("/", dataRequestRoutes);
  documentSeparateRoutes(api);
  api.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "anchorpipe edge API",
      version: "1",
      description:
        "CI test-result ingestion, flaky-test intelligence and its administration. Every error has the `Error` shape.",
    },
    servers: [{ url: "/api" }],
  });
  api.openAPIRegistry.registerComponent("securitySchemes", "personalToken", {
    type: "http",
    scheme: "bearer",
    description: "A personal token (`ap_…`): POST /api/auth/tokens, or `npm run user:create`.",
  });
  api.openAPIRegistry.registerComponent("securitySchemes", "operatorToken", {
    type: "http",
    scheme: "bearer",
    description: "The OPERATOR_TOKEN secret, for GET /api/metrics.",
  });
  api.openAPIRegistry.registerComponent("securitySchemes", "githubSignature", {
    type: "apiKey",
    in: "header",
    name: "X-Hub-Signature-256",
    description: "`sha256=<hex HMAC-SHA256 of the body>` with the GitHub App's webhook secret (GITHUB_WEBHOOK_SECRET).",
  });
  api.openAPIRegistry.registerComponent("securitySchemes", "repositorySignature", {
    type: "apiKey",
    in: "header",
    name: "webhook-signature",
    description:
      "Standard Webhooks v2 signature with the repository's signing secret, with `webhook-id`, `webhook-timestamp` " +
      "and `Authorization: Bearer <repo id>` (or anchorpipe's v1 `X-FR-Sig`). See spec/ingestion.md.",
  });
  return api;
}

/**
 * The ingestion and health endpoints read their bodies themselves (a signature is checked over the raw bytes
 * before anything is parsed), so they are plain Hono routes; their documentation comes from the same schemas.
 */
function documentSeparateRoutes(api: ReturnType<typeof apiApp>) {
  const ingestionResponse = z
    .object({
      runId: z.string(),
      ingestionId: z.string(),
      message: z.string(),
      summary: z.object({
        tests_parsed: z.number().int(),
        tests_failed: z.number().int(),
        tests_skipped: z.number().int(),
        flaky_candidates: z.number().int(),
        attempts: z.number().int(),
      }),
      isDuplicate: z.boolean(),
    })
    .openapi("IngestionAnswer");
  const error = (description: string) => ({ description, content: { "application/json": { schema: errorSchema } } });
  api.openAPIRegistry.registerPath({
    method: "post",
    path: "/ingestion",
    tags: ["ingestion"],
    summary: "Upload CI test results (signed with the repository's secret)",
    description: `Body at most INGESTION_MAX_BODY_BYTES (default ${LIMITS.defaultMaxBodyBytes} bytes); at most ${LIMITS.results} results.`,
    security: [{ repositorySignature: [] }],
    request: { body: { content: { "application/json": { schema: payloadSchema } } } },
    responses: {
      200: { description: "Stored (or a duplicate)", content: { "application/json": { schema: ingestionResponse } } },
      400: error("Invalid JSON or payload"),
      401: error("Bad or missing signature, or unknown repository"),
      403: error("repo_id is not the signed-for repository"),
      409: error("The idempotency key was used for another body"),
      413: error("Body too large"),
      415: error("Not application/json"),
      429: error("Rate limited; see Retry-After"),
      503: error("Database unavailable; see Retry-After"),
    },
  });
  const status = z.object({ status: z.string() }).passthrough();
  const json = (description: string, schema: z.ZodType) => ({
    description,
    content: { "application/json": { schema } },
  });
  const webhookAnswer = z
    .object({
      deliveryId: z.string(),
      event: z.string(),
      action: z.string().nullable(),
      outcome: z.enum(["pong", "applied", "queued", "ignored", "duplicate"]),
      isDuplicate: z.boolean(),
      queued: z.boolean(),
      message: z.string(),
      recordId: z.string().optional().openapi({ description: "queued: the workflow run's record." }),
    })
    .openapi("GithubWebhookAnswer");
  api.openAPIRegistry.registerPath({
    method: "post",
    path: "/webhooks/github",
    tags: ["github"],
    summary: "The GitHub App's webhook deliveries (signed by GitHub with the App's webhook secret)",
    description:
      `Body at most ${GITHUB_WEBHOOK_MAX_BODY_BYTES} bytes. Headers X-GitHub-Event and X-GitHub-Delivery (a GUID; a ` +
      "delivery id already handled is acknowledged and changes nothing). Handled: installation (created, deleted, " +
      "suspend, unsuspend, new_permissions_accepted), installation_repositories (added, removed), workflow_run " +
      "(completed), ping. Any other event or action: 202 with nothing stored. See README, GitHub App.",
    security: [{ githubSignature: [] }],
    request: {
      body: { content: { "application/json": { schema: z.object({ action: z.string().optional() }).passthrough() } } },
    },
    responses: {
      200: json("ping, an installation change applied, or a duplicate delivery", webhookAnswer),
      202: json("A workflow run queued, or nothing to do (ignored)", webhookAnswer),
      400: error("Invalid headers, JSON or payload"),
      401: error("Bad or missing signature"),
      413: error("Body too large"),
      415: error("Not application/json"),
      429: error("Rate limited; see Retry-After"),
      500: error("GITHUB_WEBHOOK_SECRET is not configured (misconfigured)"),
      503: error("Database or queue unavailable; see Retry-After (GitHub can redeliver)"),
    },
  });
  ROUTE_ACCESS.set("POST /api/webhooks/github", "signed");
  const part = z
    .object({ status: z.enum(["ok", "warn", "fail", "unknown"]) })
    .passthrough()
    .openapi("HealthPart");
  const healthReport = z
    .object({
      status: z.enum(["healthy", "unhealthy"]),
      failing: z.array(z.string()).openapi({ description: "The parts whose status is fail." }),
      checks: z.object({
        database: part,
        migrations: part,
        defaultPartition: part,
        partitions: part,
        ingestion: part,
        jobs: part,
      }),
      timestamp: z.string(),
    })
    .openapi("HealthReport");
  const healthRoutes = [
    {
      path: "/health",
      summary: "Health: database, migrations, partitions, last ingestion and each job's last success",
      description:
        "503 (with Retry-After: 30) when any part fails, naming it in `failing`; thresholds in the README, Operations.",
      ok: json("Every part ok, warn or unknown", healthReport),
      unhealthy: json("At least one part failed", healthReport),
    },
    {
      path: "/health/live",
      summary: "Liveness: the Worker answers (no database)",
      description: undefined,
      ok: json("Alive", status),
      unhealthy: undefined,
    },
    {
      path: "/health/db",
      summary: "Readiness of the database path",
      description: undefined,
      ok: json("Healthy", status),
      unhealthy: json("Unhealthy", status),
    },
  ];
  for (const { path, summary, description, ok, unhealthy } of healthRoutes) {
    api.openAPIRegistry.registerPath({
      method: "get",
      path,
      tags: ["health"],
      summary,
      description,
      security: [],
      responses: unhealthy ? { 200: ok, 503: unhealthy } : { 200: ok },
    });
    ROUTE_ACCESS.set(`GET /api${path}`, "public");
  }
  api.openAPIRegistry.registerPath({
    method: "get",
    path: "/version",
    tags: ["health"],
    summary: "The Worker's name, version and the git commit it was built from (`unknown` when not known)",
    security: [],
    responses: {
      200: json("The build", z.object({ name: z.string(), version: z.string(), commit: z.string() })),
    },
  });
  ROUTE_ACCESS.set("GET /api/version", "public");
  // Behind the operator token, not a person's role: outside ROUTE_ACCESS and the RBAC matrix
  // (test/worker/metrics.test.ts covers its answers).
  api.openAPIRegistry.registerPath({
    method: "get",
    path: "/metrics",
    tags: ["health"],
    summary: "Prometheus metrics (text format 0.0.4)",
    description: "Requires the OPERATOR_TOKEN secret; what each series means is in the README, Operations.",
    security: [{ operatorToken: [] }],
    responses: {
      200: {
        description: "Prometheus text exposition format",
        content: { "text/plain": { schema: z.string() } },
      },
      401: error("Missing or wrong operator token"),
      404: error("No OPERATOR_TOKEN is configured"),
    },
  });
  ROUTE_ACCESS.set("POST /api/ingestion", "signed");
  ROUTE_ACCESS.set("GET /api/openapi.json", "public");
}

/**
 * The interactive reference at /docs, rendered by Scalar from /api/openapi.json. The page talks to this
 * origin only (DOCS_CSP; test/browser checks it): no fonts from Scalar's CDN (the system's fonts instead),
 * no agent chat (on localhost it queries api.scalar.com through proxy.scalar.com), no telemetry, and the
 * page looks the same on localhost as deployed (no developer toolbar).
 */
export const apiReference = (scriptUrl: string) =>
  Scalar({
    url: "/api/openapi.json",
    pageTitle: "anchorpipe edge API",
    cdn: scriptUrl,
    withDefaultFonts: false,
    agent: { disabled: true },
    telemetry: false,
    showDeveloperTools: "never",
  });
