import { z } from "@hono/zod-openapi";
import { ApiError } from "../../lib/errors";
import { keyringFor } from "../../lib/keyring";
import { decodeCursor, pageQuery, toPage, withoutCursor } from "../../lib/pagination";
import { REPO_ROLES } from "../../services/permissions";
import { getRepoConfig, updateRepoConfig } from "../../services/repo-config";
import { listRoles, removeRole, roleHistory, setRole } from "../../services/roles";
import { createSecret, listSecrets, revokeSecret, rotateSecret, SecretNotFoundError } from "../../services/secrets";
import { callerOf, serviceContext } from "../context";
import { apiApp, CONFLICT, date, ERRORS, idParam, json, pageOf, route } from "../openapi";

/** Roles, signing secrets and config of one repository. */
export const repoAdminRoutes = apiApp();

const repoParams = z.object({ repoId: idParam("repoId") });
const userParams = repoParams.extend({ userId: idParam("userId") });
const secretParams = repoParams.extend({ secretId: idParam("secretId") });
const keyAfter = z.tuple([z.iso.datetime({ offset: true }), z.uuid()]);

// Roles --------------------------------------------------------------------------------------------------

const roleSchema = z
  .object({
    userId: z.string(),
    login: z.string().nullable(),
    name: z.string().nullable(),
    role: z.enum(REPO_ROLES),
    assignedBy: z.string().nullable(),
    updatedAt: date(),
  })
  .openapi("Role");

repoAdminRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/roles",
    tags: ["roles"],
    summary: "Who has which role on the repository",
    request: { params: repoParams, query: z.object(pageQuery) },
    responses: { 200: json(pageOf(roleSchema), "A page of roles"), ...ERRORS },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = decodeCursor(cursor, z.tuple([z.string()]));
    const rows = await listRoles(serviceContext(c, "read"), c.req.valid("param").repoId, {
      limit: limit + 1,
      after: after?.[0] ?? null,
    });
    return c.json(
      toPage(
        rows,
        limit,
        (r) => r,
        (r) => [r.userId],
      ),
      200,
    );
  },
);

const roleChange = (outcome: Awaited<ReturnType<typeof setRole>>) => {
  if (outcome.kind === "last_admin") {
    throw new ApiError("conflict", "The last admin of a repository cannot be removed or demoted.");
  }
  if (outcome.kind === "no_such_user") throw new ApiError("not_found", "User not found.");
  if (outcome.kind === "no_such_role") throw new ApiError("not_found", "That user has no role on this repository.");
};

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "put",
    path: "/repos/{repoId}/roles/{userId}",
    tags: ["roles"],
    summary: "Give a user a role on the repository, or change it",
    request: {
      params: userParams,
      body: {
        content: {
          "application/json": { schema: z.strictObject({ role: z.enum(REPO_ROLES) }).openapi("RoleAssignment") },
        },
      },
    },
    responses: {
      200: json(z.object({ userId: z.string(), role: z.enum(REPO_ROLES), changed: z.boolean() }), "The role"),
      ...ERRORS,
      ...CONFLICT,
    },
  }),
  async (c) => {
    const { repoId, userId } = c.req.valid("param");
    const { role } = c.req.valid("json");
    const outcome = await setRole(serviceContext(c, "write"), { actorId: callerOf(c).userId, repoId, userId, role });
    roleChange(outcome);
    return c.json({ userId, role, changed: outcome.kind === "changed" }, 200);
  },
);

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "delete",
    path: "/repos/{repoId}/roles/{userId}",
    tags: ["roles"],
    summary: "Take a user's role on the repository away",
    request: { params: userParams },
    responses: { 204: { description: "Removed" }, ...ERRORS, ...CONFLICT },
  }),
  async (c) => {
    const { repoId, userId } = c.req.valid("param");
    roleChange(await removeRole(serviceContext(c, "write"), { actorId: callerOf(c).userId, repoId, userId }));
    return c.body(null, 204);
  },
);

const roleHistorySchema = z
  .object({
    id: z.string(),
    actorId: z.string().nullable(),
    targetUserId: z.string().nullable(),
    action: z.string(),
    oldRole: z.enum(REPO_ROLES).nullable(),
    newRole: z.enum(REPO_ROLES).nullable(),
    createdAt: date(),
  })
  .openapi("RoleChange");

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "get",
    path: "/repos/{repoId}/roles/audit",
    tags: ["roles"],
    summary: "The history of the repository's roles, newest first",
    request: { params: repoParams, query: z.object(pageQuery) },
    responses: { 200: json(pageOf(roleHistorySchema), "A page of role changes"), ...ERRORS },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const rows = await roleHistory(serviceContext(c, "read"), c.req.valid("param").repoId, {
      limit: limit + 1,
      after: decodeCursor(cursor, keyAfter),
    });
    return c.json(
      toPage(rows, limit, withoutCursor, (r) => [r.cursorAt, r.id]),
      200,
    );
  },
);

// Signing secrets --------------------------------------------------------------------------------------------

const secretSchema = z
  .object({
    id: z.string(),
    keyId: z.string(),
    name: z.string(),
    active: z.boolean(),
    revoked: z.boolean(),
    createdAt: date(),
    lastUsedAt: date().nullable(),
    expiresAt: date().nullable(),
    revokedAt: date().nullable(),
    rotatedFrom: z.string().nullable(),
  })
  .openapi("SigningSecret");
const withPlaintext = z
  .object({ secret: secretSchema, plaintext: z.string().describe("whsec_…, shown only in this answer") })
  .openapi("NewSigningSecret");

async function keyring(c: { get(key: "config"): { HMAC_KEK?: string } }) {
  const kek = c.get("config").HMAC_KEK;
  if (!kek) throw new ApiError("misconfigured", "Signing secrets are not configured.");
  return keyringFor(kek);
}

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "get",
    path: "/repos/{repoId}/secrets",
    tags: ["signing secrets"],
    summary: "The repository's signing secrets, without secret material",
    request: { params: repoParams },
    responses: { 200: json(z.object({ items: z.array(secretSchema) }), "Every secret, newest first"), ...ERRORS },
  }),
  async (c) => c.json({ items: await listSecrets(serviceContext(c, "read"), c.req.valid("param").repoId) }, 200),
);

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "post",
    path: "/repos/{repoId}/secrets",
    tags: ["signing secrets"],
    summary: "A new signing secret (its plaintext is shown once)",
    request: {
      params: repoParams,
      body: {
        content: {
          "application/json": {
            schema: z
              .strictObject({
                name: z
                  .string()
                  .min(1)
                  .max(100)
                  .regex(/^[\x20-\x7e]+$/, "printable ASCII")
                  .optional(),
                expiresAt: z.iso.datetime({ offset: true }).optional(),
              })
              .openapi("NewSigningSecretRequest"),
          },
        },
        required: false,
      },
    },
    responses: { 201: json(withPlaintext, "The secret and its plaintext"), ...ERRORS },
  }),
  async (c) => {
    const body = c.req.valid("json") ?? {};
    const created = await createSecret(serviceContext(c, "write"), await keyring(c), {
      repoId: c.req.valid("param").repoId,
      name: body.name,
      expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
    });
    return c.json(created, 201);
  },
);

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "post",
    path: "/repos/{repoId}/secrets/{secretId}/rotate",
    tags: ["signing secrets"],
    summary: "Replace a secret; the old one stays valid for an overlap (24 h by default)",
    request: {
      params: secretParams,
      body: {
        content: {
          "application/json": {
            schema: z.strictObject({ overlapHours: z.number().min(0).max(720).optional() }).openapi("Rotation"),
          },
        },
        required: false,
      },
    },
    responses: { 201: json(withPlaintext, "The new secret and its plaintext"), ...ERRORS },
  }),
  async (c) => {
    const { repoId, secretId } = c.req.valid("param");
    try {
      const rotated = await rotateSecret(serviceContext(c, "write"), await keyring(c), {
        repoId,
        secretId,
        overlapHours: c.req.valid("json")?.overlapHours,
      });
      return c.json(rotated, 201);
    } catch (error) {
      if (error instanceof SecretNotFoundError) throw new ApiError("not_found", "No such active secret.");
      throw error;
    }
  },
);

repoAdminRoutes.openapi(
  route("repo:admin", {
    method: "delete",
    path: "/repos/{repoId}/secrets/{secretId}",
    tags: ["signing secrets"],
    summary: "Revoke a secret at once",
    request: { params: secretParams },
    responses: { 200: json(secretSchema, "The revoked secret"), ...ERRORS },
  }),
  async (c) => {
    try {
      return c.json(await revokeSecret(serviceContext(c, "write"), c.req.valid("param")), 200);
    } catch (error) {
      if (error instanceof SecretNotFoundError) throw new ApiError("not_found", "No such active secret.");
      throw error;
    }
  },
);

// Config -----------------------------------------------------------------------------------------------------

const weights = z.object({
  passRate: z.number().min(0).max(1),
  volatility: z.number().min(0).max(1),
  recencyFail: z.number().min(0).max(1),
  clustering: z.number().min(0).max(1),
});
/** Patterns on artifact names (`*`, `?`; src/services/github/artifacts.ts), bounded and printable. */
const artifactPatterns = z
  .array(
    z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\x20-\x7e]+$/, "must be printable ASCII"),
  )
  .min(1)
  .max(20)
  .openapi({ description: "Replaces the list; null goes back to the defaults", example: ["*test-results*"] });

const configSchema = z
  .object({
    retentionDays: z.number().int(),
    scoringThreshold: z.number().int(),
    requireTimestampedSignature: z.boolean(),
    scoringWeights: weights,
    githubArtifactPatterns: z.array(z.string()).openapi({
      description: "Names of workflow-run artifacts the GitHub App reads (`*` any characters, `?` one; case ignored)",
    }),
    updatedAt: date().nullable(),
  })
  .openapi("RepositoryConfig");

repoAdminRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/config",
    tags: ["config"],
    summary: "Retention, scoring threshold and weights, signature policy",
    request: { params: repoParams },
    responses: { 200: json(configSchema, "The config (defaults where never set)"), ...ERRORS },
  }),
  async (c) => c.json(await getRepoConfig(serviceContext(c, "read"), c.req.valid("param").repoId), 200),
);

repoAdminRoutes.openapi(
  route("repo:write", {
    method: "patch",
    path: "/repos/{repoId}/config",
    tags: ["config"],
    summary: "Change the config",
    request: {
      params: repoParams,
      body: {
        content: {
          "application/json": {
            schema: z
              .strictObject({
                retentionDays: z.number().int().min(1).max(3650).optional(),
                scoringThreshold: z.number().int().min(0).max(100).optional(),
                requireTimestampedSignature: z.boolean().optional(),
                scoringWeights: weights.partial().strict().optional(),
                githubArtifactPatterns: artifactPatterns.nullable().optional(),
              })
              .refine((body) => Object.keys(body).length > 0, "nothing to change")
              .openapi("RepositoryConfigChanges"),
          },
        },
      },
    },
    responses: { 200: json(configSchema, "The config after the change"), ...ERRORS },
  }),
  async (c) => {
    const config = await updateRepoConfig(serviceContext(c, "write"), {
      actorId: callerOf(c).userId,
      repoId: c.req.valid("param").repoId,
      changes: c.req.valid("json"),
    });
    return c.json(config, 200);
  },
);
