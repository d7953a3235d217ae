import { createRoute, OpenAPIHono, type RouteConfig, z } from "@hono/zod-openapi";
import type { AppEnv } from "../app-env";
import { isStorableText, issueDetails, UNSTORABLE_MESSAGE } from "../contract/ingestion";
import { ApiError, ERROR_CODES } from "../lib/errors";
import type { Access } from "../services/permissions";
import { accessMiddleware } from "./access";

/**
 * The authenticated API is declared with @hono/zod-openapi: each route's
 * params, query, body and answers are zod schemas, which both validate the
 * request and generate the OpenAPI 3.1 document (/api/openapi.json). Every
 * route also names its Access, recorded here so the RBAC tests can check
 * that no route goes without an entry.
 */

export function apiApp() {
  return new OpenAPIHono<AppEnv>({
    // One validation-failure path: the same 400 envelope, naming every failing field.
    defaultHook: (result) => {
      if (!result.success) {
        throw new ApiError("validation_failed", "The request is invalid.", issueDetails(result.error));
      }
    },
  });
}

/** Every API route with what it requires: `${METHOD} ${openapi path}` → Access. */
export const ROUTE_ACCESS = new Map<string, Access>();

const SECURITY: Partial<Record<Access, RouteConfig["security"]>> = {
  public: [],
  signed: [{ repositorySignature: [] }],
};

/**
 * createRoute, plus the route's access rule as middleware and in ROUTE_ACCESS. `path` is under /api.
 * `signedReads`: a repository read CI makes, which also takes the repository's signature (as read_only).
 */
export function route<P extends string, R extends Omit<RouteConfig, "path" | "middleware"> & { path: P }>(
  access: Access,
  config: R,
  options: { signedReads?: boolean } = {},
) {
  ROUTE_ACCESS.set(`${config.method.toUpperCase()} /api${config.path}`, access);
  const security = SECURITY[access] ?? [{ personalToken: [] }];
  return createRoute({
    ...config,
    security: options.signedReads ? [...security, { repositorySignature: [] }] : security,
    middleware: [accessMiddleware(access, options)] as const,
  });
}

export const errorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]]),
      message: z.string(),
      requestId: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi("Error");

const errorContent = { "application/json": { schema: errorSchema } };

/** The error answers every authenticated route can give. */
export const ERRORS = {
  400: { description: "Invalid parameters, query or body (`validation_failed`)", content: errorContent },
  401: { description: "No valid personal token", content: errorContent },
  403: { description: "The caller's role does not allow this", content: errorContent },
  404: { description: "No such resource, or a repository the caller has no role in", content: errorContent },
  429: { description: "Rate limited; see Retry-After", content: errorContent },
} as const;

export const CONFLICT = { 409: { description: "Conflict", content: errorContent } } as const;

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A page of items: `{ items, nextCursor }`. */
/** A bounded filter value that PostgreSQL can compare with. */
export const filterText = (max: number) => z.string().min(1).max(max).refine(isStorableText, UNSTORABLE_MESSAGE);

/** What names a test case in every answer about one. */
export const testIdentity = {
  testId: z.string(),
  path: z.string(),
  name: z.string(),
  suite: z.string().nullable(),
  framework: z.string(),
};

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

/** A uuid in the path, canonicalised to lower case; anything else is 400 `validation_failed`. */
export const idParam = (name: string) =>
  z
    .string()
    .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, "must be a uuid")
    .transform((id) => id.toLowerCase())
    .openapi({ param: { name, in: "path" }, format: "uuid" });
export const date = () => z.iso.datetime({ offset: true });
