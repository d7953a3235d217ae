import { idempotencyKeyFor, issueDetails, type Payload, payloadSchema } from "../contract/ingestion";
import { type NormalizedResult, normalizeResults } from "../ingestion/normalize";
import { decodeJson } from "../lib/body";
import type { ClientInfo } from "../lib/client-info";
import { describeDbError } from "../lib/db-errors";
import { sha256Hex } from "../lib/encoding";
import { ApiError } from "../lib/errors";
import { log } from "../lib/logger";
import type { ServiceContext } from "./context";
import {
  IngestionIncompleteError,
  type IngestionInput,
  IngestionRefusedError,
  type IngestionResponse,
  storeIngestion,
} from "./ingestion";
import type { AuthenticatedUpload } from "./upload-auth";

/**
 * An authenticated upload, from its raw bytes to stored rows: decode, parse,
 * validate against the wire contract, normalise (reports parsed, output
 * redacted), check the repository, store. Every client mistake is an ApiError
 * (4xx) thrown before anything is written; see services/ingestion.ts for how
 * the write itself stays all-or-nothing.
 */
export async function ingestUpload(
  ctx: ServiceContext,
  input: { auth: AuthenticatedUpload; body: Uint8Array<ArrayBuffer>; client: ClientInfo },
): Promise<IngestionResponse> {
  const { auth, body } = input;
  const { payload, results } = validatePayload(decodeJson(body), ctx.now());
  if (payload.repo_id.toLowerCase() !== auth.repoId) {
    throw new ApiError("forbidden", "repo_id does not match the repository the request is signed for.");
  }
  const bodySha256 = await sha256Hex(body);
  return store(ctx, {
    repoId: auth.repoId,
    payload,
    results,
    idempotencyKey: idempotencyKeyFor(auth.scheme, {
      webhookId: auth.webhookId,
      payloadKey: payload.idempotency_key,
      bodySha256Hex: bodySha256,
    }),
    payloadSha256: bodySha256,
    scheme: auth.scheme,
    secretId: auth.secret.id,
    keyId: auth.secret.keyId,
    client: input.client,
  });
}

/**
 * Reports the GitHub App fetched itself (src/services/github): the same
 * validation, normalisation and storage as an upload, without a signing
 * secret. `payload` is built by the App from a workflow run; its
 * idempotency_key names the artifact (whose content never changes), so a
 * redelivered webhook or a re-run stores nothing twice.
 */
export async function ingestAppReports(
  ctx: ServiceContext,
  input: {
    repoId: string;
    payload: unknown;
    /** What identifies the content (an artifact's id and digest): a different one under the same key conflicts. */
    contentId: string;
  },
): Promise<{ outcome: "stored" | "duplicate"; response: IngestionResponse }> {
  const { payload, results } = validatePayload(input.payload, ctx.now());
  if (payload.repo_id.toLowerCase() !== input.repoId || !payload.idempotency_key) {
    throw new Error("the App built a payload for another repository or without an idempotency key");
  }
  const response = await store(ctx, {
    repoId: input.repoId,
    payload,
    results,
    idempotencyKey: `github-app:${payload.idempotency_key}`,
    payloadSha256: await sha256Hex(input.contentId),
    scheme: "github-app",
    secretId: null,
    keyId: null,
    client: { ipAddress: null, userAgent: "anchorpipe GitHub App" },
  });
  return { outcome: response.isDuplicate ? "duplicate" : "stored", response };
}

function validatePayload(json: unknown, now: Date): { payload: Payload; results: NormalizedResult[] } {
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) {
    throw new ApiError("validation_failed", "The payload is invalid.", issueDetails(parsed.error));
  }
  const normalized = normalizeResults(parsed.data, now);
  if (!normalized.ok) throw new ApiError("validation_failed", "The payload is invalid.", normalized.details);
  return { payload: parsed.data, results: normalized.results };
}

async function store(
  ctx: ServiceContext,
  input: Pick<IngestionInput, "repoId" | "idempotencyKey" | "payloadSha256" | "scheme" | "secretId" | "keyId"> & {
    payload: Payload;
    results: NormalizedResult[];
    client: ClientInfo;
  },
): Promise<IngestionResponse> {
  const { payload } = input;
  const environment = payload.environment ?? null;
  const outcome = await storeIngestion(ctx, {
    repoId: input.repoId,
    idempotencyKey: input.idempotencyKey,
    commitSha: payload.commit_sha.toLowerCase(),
    runId: payload.run_id,
    framework: payload.framework,
    branch: payload.branch ?? null,
    pullRequest: payload.pull_request ?? null,
    environment,
    environmentHash: environment ? await sha256Hex(canonicalJson(environment)) : null,
    metadata: payload.metadata ?? null,
    scheme: input.scheme,
    secretId: input.secretId,
    keyId: input.keyId,
    payloadSha256: input.payloadSha256,
    results: input.results,
    userAgent: input.client.userAgent,
    ipAddress: input.client.ipAddress,
  }).catch((error: unknown) => {
    if (error instanceof IngestionIncompleteError) {
      throw new ApiError("service_unavailable", "The same upload is being stored by another request; retry shortly.");
    }
    if (error instanceof IngestionRefusedError) {
      // Validation should have caught it: log the shape (never the values) so the rule can be added.
      log.warn("ingestion.refused_by_database", { requestId: ctx.requestId, ...describeDbError(error.cause) });
      throw new ApiError("validation_failed", "The payload is invalid.", [
        { path: "(upload)", message: `the database refused a value (SQLSTATE ${error.sqlState}); nothing was stored` },
      ]);
    }
    throw error;
  });
  if (outcome.kind === "conflict") {
    throw new ApiError("conflict", "This idempotency key was already used for a different payload.");
  }
  return outcome.response;
}

/** Key order must not change the hash of the same environment. */
function canonicalJson(value: Record<string, string>): string {
  return JSON.stringify(
    Object.keys(value)
      .sort()
      .map((key) => [key, value[key]]),
  );
}
