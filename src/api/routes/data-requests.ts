import { z } from "@hono/zod-openapi";
import { ApiError } from "../../lib/errors";
import { auditQuery } from "../../services/audit";
import { DOWNLOAD_LINK_SECONDS, signDownload, verifyDownload } from "../../services/privacy/links";
import { exportKey } from "../../services/privacy/process";
import {
  createRequest,
  decideRequest,
  getRequest,
  listRequests,
  type RequestView,
  soleAdminMessage,
} from "../../services/privacy/requests";
import { callerOf, serviceContext } from "../context";
import { apiApp, CONFLICT, date, ERRORS, idParam, json, route } from "../openapi";

/** Data subject requests (docs/privacy.md): a person's own under /me, every one for platform admins. */
export const dataRequestRoutes = apiApp();

const STATUSES = ["pending", "processing", "completed", "failed", "rejected"] as const;

const requestSchema = z
  .object({
    id: z.string(),
    userId: z.string(),
    type: z.enum(["export", "delete"]),
    status: z.enum(STATUSES),
    requestedAt: date(),
    dueAt: date().openapi({ description: "requestedAt + the deadline (DSR_DEADLINE_DAYS, default 30 days)" }),
    processedAt: date().nullable(),
    overdue: z.boolean(),
    exportAvailable: z.boolean(),
    events: z.array(z.object({ status: z.enum(STATUSES), message: z.string().nullable(), createdAt: date() })),
  })
  .openapi("DataRequest");

const wire = (r: RequestView) => ({
  ...r,
  requestedAt: r.requestedAt.toISOString(),
  dueAt: r.dueAt.toISOString(),
  processedAt: r.processedAt?.toISOString() ?? null,
  events: r.events.map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })),
});

const requestParams = z.object({ requestId: idParam("requestId") });
const listOf = z.object({ items: z.array(requestSchema) });
const notFound = () => new ApiError("not_found", "Data request not found.");

dataRequestRoutes.openapi(
  route("user", {
    method: "post",
    path: "/me/data-requests",
    tags: ["privacy"],
    summary: "Ask for a copy of your data (export) or for its erasure (delete)",
    description:
      "A platform admin approves or rejects it; the daily job carries out approved ones. Due DSR_DEADLINE_DAYS " +
      "(default 30) days after the request. A deletion is refused while you are the only admin of a repository.",
    request: {
      body: {
        content: {
          "application/json": {
            schema: z.strictObject({ type: z.enum(["export", "delete"]) }).openapi("NewDataRequest"),
          },
        },
      },
    },
    responses: { 201: json(requestSchema, "The request"), ...ERRORS, ...CONFLICT },
  }),
  async (c) => {
    const outcome = await createRequest(serviceContext(c, "write"), {
      userId: callerOf(c).userId,
      type: c.req.valid("json").type,
      deadlineDays: c.get("config").DSR_DEADLINE_DAYS,
    });
    if (outcome.kind === "sole_admin") throw new ApiError("conflict", soleAdminMessage(outcome.repos));
    if (outcome.kind === "already_open") {
      throw new ApiError("conflict", `A request of this type is already open (${outcome.requestId}).`);
    }
    return c.json(wire(outcome.request), 201);
  },
);

dataRequestRoutes.openapi(
  route("user", {
    method: "get",
    path: "/me/data-requests",
    tags: ["privacy"],
    summary: "Your data requests, newest first, with their timelines",
    responses: { 200: json(listOf, "Your requests"), ...ERRORS },
  }),
  async (c) => {
    const items = await listRequests(serviceContext(c, "read"), { userId: callerOf(c).userId, limit: 100 });
    return c.json({ items: items.map(wire) }, 200);
  },
);

dataRequestRoutes.openapi(
  route("user", {
    method: "get",
    path: "/me/data-requests/{requestId}",
    tags: ["privacy"],
    summary: "One of your data requests: status and timeline",
    request: { params: requestParams },
    responses: { 200: json(requestSchema, "The request"), ...ERRORS },
  }),
  async (c) => {
    const request = await getRequest(serviceContext(c, "read"), c.req.valid("param").requestId, callerOf(c).userId);
    if (!request) throw notFound();
    return c.json(wire(request), 200);
  },
);

dataRequestRoutes.openapi(
  route("user", {
    method: "post",
    path: "/me/data-requests/{requestId}/download-link",
    tags: ["privacy"],
    summary: "A signed link to your completed export, valid 15 minutes and only with your own token",
    request: { params: requestParams },
    responses: {
      200: json(z.object({ url: z.string(), expiresAt: date() }).openapi("DownloadLink"), "The link"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const userId = callerOf(c).userId;
    const request = await getRequest(serviceContext(c, "read"), c.req.valid("param").requestId, userId);
    if (!request?.exportAvailable) throw notFound();
    const now = new Date();
    const link = await signDownload(linkSecret(c.get("config").HMAC_KEK), { requestId: request.id, userId, now });
    return c.json(
      {
        url: `/api/me/data-requests/${request.id}/download?expires=${link.expires}&signature=${link.signature}`,
        expiresAt: new Date(link.expires * 1000).toISOString(),
      },
      200,
    );
  },
);

dataRequestRoutes.openapi(
  route("user", {
    method: "get",
    path: "/me/data-requests/{requestId}/download",
    tags: ["privacy"],
    summary: "Download your export (a ZIP: export.json and one CSV per table) through a signed link",
    description: `The link expires ${DOWNLOAD_LINK_SECONDS / 60} minutes after it was made and works only with the token of the person it was made for.`,
    request: {
      params: requestParams,
      query: z.object({ expires: z.coerce.number().int(), signature: z.string().max(100) }),
    },
    responses: {
      200: { description: "The archive", content: { "application/zip": { schema: z.string() } } },
      ...ERRORS,
    },
  }),
  async (c) => {
    const userId = callerOf(c).userId;
    const { requestId } = c.req.valid("param");
    const { expires, signature } = c.req.valid("query");
    const valid = await verifyDownload(linkSecret(c.get("config").HMAC_KEK), {
      requestId,
      userId,
      expires,
      signature,
      now: new Date(),
    });
    if (!valid) throw new ApiError("forbidden", "This download link is not valid for you, or it has expired.");
    const ctx = serviceContext(c, "write");
    const request = await getRequest(ctx, requestId, userId);
    const object = request?.exportAvailable ? await c.env.ARCHIVE?.get(exportKey(requestId)) : null;
    if (!object) throw notFound();
    await auditQuery(ctx.db, {
      actorId: userId,
      action: "dsr_export_download",
      subject: "dsr",
      subjectId: requestId,
      description: "data subject export downloaded",
      requestId: ctx.requestId,
    });
    return c.body(object.body, 200, {
      "Content-Type": "application/zip",
      "Content-Disposition": `attachment; filename="anchorpipe-export-${requestId}.zip"`,
      "Cache-Control": "no-store",
    });
  },
);

function linkSecret(kek: string | undefined): string {
  if (!kek) throw new ApiError("misconfigured", "Download links are not configured.");
  return kek;
}

// Platform admins -----------------------------------------------------------------------------------------

dataRequestRoutes.openapi(
  route("platform_admin", {
    method: "get",
    path: "/admin/data-requests",
    tags: ["privacy"],
    summary: "Every data request (newest first, at most 500), optionally by status",
    request: { query: z.object({ status: z.enum(STATUSES).optional() }) },
    responses: { 200: json(listOf, "The requests"), ...ERRORS },
  }),
  async (c) => {
    const { status } = c.req.valid("query");
    const items = await listRequests(serviceContext(c, "read"), { status, limit: 500 });
    return c.json({ items: items.map(wire) }, 200);
  },
);

dataRequestRoutes.openapi(
  route("platform_admin", {
    method: "patch",
    path: "/admin/data-requests/{requestId}",
    tags: ["privacy"],
    summary: "Approve (the daily job carries it out) or reject a pending request, with a reason",
    request: {
      params: requestParams,
      body: {
        content: {
          "application/json": {
            schema: z
              .strictObject({ decision: z.enum(["approve", "reject"]), reason: z.string().trim().min(1).max(500) })
              .openapi("DataRequestDecision"),
          },
        },
      },
    },
    responses: { 200: json(requestSchema, "The request"), ...ERRORS, ...CONFLICT },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const outcome = await decideRequest(serviceContext(c, "write"), {
      id: c.req.valid("param").requestId,
      decision: body.decision,
      reason: body.reason,
    });
    if (outcome.kind === "not_found") throw notFound();
    if (outcome.kind === "not_pending")
      throw new ApiError("conflict", `The request is ${outcome.status}, not pending.`);
    if (outcome.kind === "sole_admin") throw new ApiError("conflict", soleAdminMessage(outcome.repos));
    return c.json(wire(outcome.request), 200);
  },
);
