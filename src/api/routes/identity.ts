import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { REPO_ROLES } from "../../services/permissions";
import { createToken, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, revokeSession } from "../../services/tokens";
import { callerOf, serviceContext } from "../context";
import { apiApp, date, ERRORS, json, route } from "../openapi";

export const identityRoutes = apiApp();

const meSchema = z
  .object({
    id: z.string(),
    login: z.string().nullable(),
    name: z.string().nullable(),
    email: z.string().nullable(),
    isPlatformAdmin: z.boolean(),
    tokenExpiresAt: date(),
    repositories: z.array(z.object({ id: z.string(), owner: z.string(), name: z.string(), role: z.enum(REPO_ROLES) })),
  })
  .openapi("Me");

identityRoutes.openapi(
  route("user", {
    method: "get",
    path: "/me",
    tags: ["identity"],
    summary: "The caller, its repositories and roles",
    responses: { 200: json(meSchema, "The caller"), ...ERRORS },
  }),
  async (c) => {
    const caller = callerOf(c);
    const { db } = serviceContext(c, "read");
    const [user, repos] = await db.batch([
      db.execute<{ id: string; login: string | null; name: string | null; email: string | null }>(
        sql`select id, github_login as login, name, email from users where id = ${caller.userId}`,
      ),
      db.execute<{ id: string; owner: string; name: string; role: (typeof REPO_ROLES)[number] }>(sql`
        select r.id, r.owner, r.name, ur.role from user_repo_roles ur join repos r on r.id = ur.repo_id
        where ur.user_id = ${caller.userId} order by r.owner, r.name, r.id limit 1000`),
    ]);
    return c.json(
      {
        ...user.rows[0],
        isPlatformAdmin: caller.isPlatformAdmin,
        tokenExpiresAt: caller.expires.toISOString(),
        repositories: repos.rows,
      },
      200,
    );
  },
);

const newTokenBody = z
  .strictObject({
    days: z.number().int().min(1).max(MAX_TOKEN_DAYS).default(DEFAULT_TOKEN_DAYS),
    label: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\x20-\x7e]+$/, "printable ASCII")
      .optional(),
  })
  .openapi("NewTokenRequest");

identityRoutes.openapi(
  route("user", {
    method: "post",
    path: "/auth/tokens",
    tags: ["identity"],
    summary: "A new personal token for the caller (shown once)",
    request: { body: { content: { "application/json": { schema: newTokenBody } }, required: false } },
    responses: {
      201: json(z.object({ token: z.string(), expiresAt: date() }).openapi("NewToken"), "The token, shown once"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const body = c.req.valid("json") ?? { days: DEFAULT_TOKEN_DAYS };
    const created = await createToken(serviceContext(c, "write"), {
      userId: callerOf(c).userId,
      days: body.days,
      label: body.label,
    });
    return c.json({ token: created.token, expiresAt: created.expires.toISOString() }, 201);
  },
);

identityRoutes.openapi(
  route("user", {
    method: "delete",
    path: "/auth/session",
    tags: ["identity"],
    summary: "Log out: the token of this request stops working",
    responses: { 204: { description: "Logged out" }, ...ERRORS },
  }),
  async (c) => {
    await revokeSession(serviceContext(c, "write"), callerOf(c));
    return c.body(null, 204);
  },
);
