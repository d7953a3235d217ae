import { z } from "@hono/zod-openapi";
import { ApiError } from "../../lib/errors";
import { decodeCursor, pageQuery, toPage, withoutCursor } from "../../lib/pagination";
import { REPO_ROLES } from "../../services/permissions";
import { createRepo, deleteRepo, getRepo, RepoExistsError, reposOfUser, updateRepo } from "../../services/repos";
import { repositoryNotFound } from "../access";
import { callerOf, serviceContext } from "../context";
import { apiApp, CONFLICT, date, ERRORS, idParam, json, pageOf, route } from "../openapi";

export const repoRoutes = apiApp();

const repoSchema = z
  .object({
    id: z.string(),
    owner: z.string(),
    name: z.string(),
    defaultBranch: z.string(),
    visibility: z.enum(["public", "private"]),
    createdAt: date(),
    updatedAt: date(),
  })
  .openapi("Repository");
const repoWithRole = repoSchema.extend({ role: z.enum(REPO_ROLES) }).openapi("RepositoryWithRole");

/** GitHub's rules for owner and repository names, which every repository here mirrors. */
const ownerName = z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, "a GitHub owner name");
const repoName = z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, "a GitHub repository name");
const branch = z
  .string()
  .min(1)
  .max(255)
  // git check-ref-format: no control characters, spaces, ~ ^ : ? * [ or backslash.
  .regex(/^[!-~]+$/, "printable ASCII without spaces")
  .regex(/^[^~^:?*[\\]+$/, "a git branch name");
const repoParams = z.object({ repoId: idParam("repoId") });

repoRoutes.openapi(
  route("user", {
    method: "get",
    path: "/repos",
    tags: ["repositories"],
    summary: "Repositories the caller has a role in",
    request: { query: z.object(pageQuery) },
    responses: { 200: json(pageOf(repoWithRole), "A page of repositories"), ...ERRORS },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = decodeCursor(cursor, z.tuple([z.iso.datetime({ offset: true }), z.uuid()]));
    const rows = await reposOfUser(serviceContext(c, "read"), callerOf(c).userId, { limit: limit + 1, after });
    return c.json(
      toPage(rows, limit, withoutCursor, (r) => [r.cursorAt, r.id]),
      200,
    );
  },
);

repoRoutes.openapi(
  route("user", {
    method: "post",
    path: "/repos",
    tags: ["repositories"],
    summary: "Create a repository; the caller becomes its admin",
    request: {
      body: {
        content: {
          "application/json": {
            schema: z
              .strictObject({
                owner: ownerName,
                name: repoName,
                defaultBranch: branch.optional(),
                visibility: z.enum(["public", "private"]).optional(),
              })
              .openapi("NewRepository"),
          },
        },
      },
    },
    responses: { 201: json(repoWithRole, "The new repository"), ...ERRORS, ...CONFLICT },
  }),
  async (c) => {
    try {
      const repo = await createRepo(serviceContext(c, "write"), callerOf(c).userId, c.req.valid("json"));
      return c.json(repo, 201);
    } catch (error) {
      if (error instanceof RepoExistsError)
        throw new ApiError("conflict", "A repository with that owner and name exists.");
      throw error;
    }
  },
);

repoRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}",
    tags: ["repositories"],
    summary: "One repository",
    request: { params: repoParams },
    responses: { 200: json(repoWithRole, "The repository and the caller's role"), ...ERRORS },
  }),
  async (c) => {
    const repo = await getRepo(serviceContext(c, "read"), c.req.valid("param").repoId);
    if (!repo) throw repositoryNotFound();
    return c.json({ ...repo, role: c.get("role") ?? "read_only" }, 200);
  },
);

repoRoutes.openapi(
  route("repo:write", {
    method: "patch",
    path: "/repos/{repoId}",
    tags: ["repositories"],
    summary: "Change a repository's default branch or visibility",
    request: {
      params: repoParams,
      body: {
        content: {
          "application/json": {
            schema: z
              .strictObject({ defaultBranch: branch.optional(), visibility: z.enum(["public", "private"]).optional() })
              .refine((body) => Object.keys(body).length > 0, "nothing to change")
              .openapi("RepositoryChanges"),
          },
        },
      },
    },
    responses: { 200: json(repoSchema, "The repository after the change"), ...ERRORS },
  }),
  async (c) => {
    const ctx = serviceContext(c, "write");
    const repo = await updateRepo(ctx, callerOf(c).userId, c.req.valid("param").repoId, c.req.valid("json"));
    if (!repo) throw repositoryNotFound();
    return c.json(repo, 200);
  },
);

repoRoutes.openapi(
  route("repo:admin", {
    method: "delete",
    path: "/repos/{repoId}",
    tags: ["repositories"],
    summary: "Delete a repository and everything stored for it",
    request: { params: repoParams },
    responses: { 204: { description: "Deleted" }, ...ERRORS },
  }),
  async (c) => {
    const deleted = await deleteRepo(serviceContext(c, "write"), callerOf(c).userId, c.req.valid("param").repoId);
    if (!deleted) throw repositoryNotFound();
    return c.body(null, 204);
  },
);
