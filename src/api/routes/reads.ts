import { z } from "@hono/zod-openapi";
import { auditAction, auditSubject } from "../../db/schema";
import { ApiError } from "../../lib/errors";
import { decodeCursor, pageQuery, toPage, withoutCursor } from "../../lib/pagination";
import { listAudit } from "../../services/audit-reads";
import { getIngestion, listIngestions } from "../../services/ingestion-reads";
import { listNotifications, markNotificationRead } from "../../services/notifications";
import { commitRuns, getTest, listTests, testRuns } from "../../services/test-reads";
import { callerOf, serviceContext } from "../context";
import { apiApp, date, ERRORS, filterText, idParam, json, pageOf, route } from "../openapi";

/** What people and dashboards read: tests, runs, uploads, notifications, audit logs. */
export const readRoutes = apiApp();

const repoParams = z.object({ repoId: idParam("repoId") });
const testParams = repoParams.extend({ testId: idParam("testId") });
const timeAndId = z.tuple([z.iso.datetime({ offset: true }), z.uuid()]);
const notFound = (what: string) => new ApiError("not_found", `${what} not found.`);

const testSchema = z
  .object({
    id: z.string(),
    path: z.string(),
    name: z.string(),
    framework: z.string(),
    suite: z.string().nullable(),
    tags: z.array(z.string()),
    firstSeenAt: date(),
    lastSeenAt: date(),
  })
  .openapi("TestCase");

const runSchema = z
  .object({
    id: z.string(),
    testId: z.string(),
    ingestionId: z.string(),
    commitSha: z.string(),
    branch: z.string().nullable(),
    pullRequest: z.string().nullable(),
    runId: z.string(),
    status: z.enum(["pass", "fail", "skip"]),
    durationMs: z.number().int().nullable(),
    startedAt: date(),
    rerunCount: z.number().int(),
    failureDetails: z.string().nullable().describe("Redacted and capped at ingestion (ADR 0004)"),
  })
  .openapi("TestRun");

readRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/tests",
    tags: ["tests"],
    summary: "Test cases, by path and name",
    request: {
      params: repoParams,
      query: z.object({
        path_prefix: filterText(1000).optional(),
        q: filterText(200).optional().describe("Part of the name, case-insensitive"),
        tag: filterText(100).optional(),
        ...pageQuery,
      }),
    },
    responses: { 200: json(pageOf(testSchema), "A page of test cases"), ...ERRORS },
  }),
  async (c) => {
    const { limit, cursor, path_prefix, q, tag } = c.req.valid("query");
    const rows = await listTests(
      serviceContext(c, "read"),
      c.req.valid("param").repoId,
      { pathPrefix: path_prefix, q, tag },
      { limit: limit + 1, after: decodeCursor(cursor, z.tuple([z.string(), z.string(), z.uuid()])) },
    );
    return c.json(
      toPage(
        rows,
        limit,
        (r) => r,
        (r) => [r.path, r.name, r.id],
      ),
      200,
    );
  },
);

readRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/tests/{testId}",
    tags: ["tests"],
    summary: "One test case with its 20 most recent runs",
    request: { params: testParams },
    responses: {
      200: json(testSchema.extend({ recentRuns: z.array(runSchema) }).openapi("TestCaseWithRuns"), "The test"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const { repoId, testId } = c.req.valid("param");
    const ctx = serviceContext(c, "read");
    const [test, runs] = await Promise.all([
      getTest(ctx, repoId, testId),
      testRuns(ctx, repoId, testId, { limit: 20, after: null }),
    ]);
    if (!test) throw notFound("Test");
    return c.json({ ...test, recentRuns: runs.map(withoutCursor) }, 200);
  },
);

readRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/tests/{testId}/runs",
    tags: ["tests"],
    summary: "A test's run history, newest first",
    request: { params: testParams, query: z.object(pageQuery) },
    responses: { 200: json(pageOf(runSchema), "A page of runs"), ...ERRORS },
  }),
  async (c) => {
    const { repoId, testId } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    const ctx = serviceContext(c, "read");
    const after = decodeCursor(cursor, timeAndId);
    const [test, rows] = await Promise.all([
      after ? Promise.resolve(true) : getTest(ctx, repoId, testId),
      testRuns(ctx, repoId, testId, { limit: limit + 1, after }),
    ]);
    if (!test) throw notFound("Test");
    return c.json(
      toPage(rows, limit, withoutCursor, (r) => [r.cursorAt, r.id]),
      200,
    );
  },
);

const ingestionSchema = z
  .object({
    id: z.string(),
    runId: z.string(),
    commitSha: z.string(),
    branch: z.string().nullable(),
    pullRequest: z.string().nullable(),
    framework: z.string(),
    signatureScheme: z.string(),
    testsTotal: z.number().int(),
    testsFailed: z.number().int(),
    testsSkipped: z.number().int(),
    receivedAt: date(),
    completedAt: date(),
  })
  .openapi("Ingestion");

readRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/ingestions",
    tags: ["ingestions"],
    summary: "Completed uploads, newest first",
    request: { params: repoParams, query: z.object(pageQuery) },
    responses: { 200: json(pageOf(ingestionSchema), "A page of uploads"), ...ERRORS },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const rows = await listIngestions(serviceContext(c, "read"), c.req.valid("param").repoId, {
      limit: limit + 1,
      after: decodeCursor(cursor, timeAndId),
    });
    return c.json(
      toPage(rows, limit, withoutCursor, (r) => [r.cursorAt, r.id]),
      200,
    );
  },
);

readRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/ingestions/{ingestionId}",
    tags: ["ingestions"],
    summary: "One upload with its result counts",
    request: { params: repoParams.extend({ ingestionId: idParam("ingestionId") }) },
    responses: {
      200: json(ingestionSchema.extend({ flakyCandidates: z.number().int() }).openapi("IngestionDetail"), "The upload"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const { repoId, ingestionId } = c.req.valid("param");
    const ingestion = await getIngestion(serviceContext(c, "read"), repoId, ingestionId);
    if (!ingestion) throw notFound("Ingestion");
    return c.json(ingestion, 200);
  },
);

readRoutes.openapi(
  route("repo:read", {
    method: "get",
    path: "/repos/{repoId}/commits/{sha}/runs",
    tags: ["tests"],
    summary: "Every result of one commit",
    request: {
      params: repoParams.extend({
        sha: z
          .string()
          .regex(/^[0-9a-fA-F]{40}$/, "must be 40 hexadecimal characters")
          .transform((sha) => sha.toLowerCase())
          .openapi({ param: { name: "sha", in: "path" } }),
      }),
      query: z.object(pageQuery),
    },
    responses: {
      200: json(pageOf(runSchema.extend({ path: z.string(), name: z.string() })), "A page of results"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const { repoId, sha } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    const rows = await commitRuns(serviceContext(c, "read"), repoId, sha, {
      limit: limit + 1,
      after: decodeCursor(cursor, z.tuple([z.string(), z.string(), z.uuid()])),
    });
    return c.json(
      toPage(rows, limit, withoutCursor, (r) => [r.path, r.name, r.id]),
      200,
    );
  },
);

const notificationSchema = z
  .object({
    id: z.string(),
    repoId: z.string().nullable().openapi({ description: "Null for a platform-wide notification" }),
    type: z.string(),
    title: z.string(),
    message: z.string(),
    severity: z.string(),
    read: z.boolean(),
    actionUrl: z.string().nullable(),
    createdAt: date(),
    readAt: date().nullable(),
  })
  .openapi("Notification");

readRoutes.openapi(
  route("user", {
    method: "get",
    path: "/notifications",
    tags: ["notifications"],
    summary: "The caller's notifications, newest first",
    request: { query: z.object({ unread: z.enum(["true", "false"]).optional(), ...pageQuery }) },
    responses: { 200: json(pageOf(notificationSchema), "A page of notifications"), ...ERRORS },
  }),
  async (c) => {
    const { limit, cursor, unread } = c.req.valid("query");
    const rows = await listNotifications(
      serviceContext(c, "read"),
      callerOf(c).userId,
      { unread: unread === "true" },
      { limit: limit + 1, after: decodeCursor(cursor, timeAndId) },
    );
    return c.json(
      toPage(rows, limit, withoutCursor, (r) => [r.cursorAt, r.id]),
      200,
    );
  },
);

readRoutes.openapi(
  route("user", {
    method: "post",
    path: "/notifications/{id}/read",
    tags: ["notifications"],
    summary: "Mark one of the caller's notifications read",
    request: { params: z.object({ id: idParam("id") }) },
    responses: { 200: json(notificationSchema, "The notification"), ...ERRORS },
  }),
  async (c) => {
    const marked = await markNotificationRead(serviceContext(c, "write"), callerOf(c).userId, c.req.valid("param").id);
    if (!marked) throw notFound("Notification");
    return c.json(withoutCursor(marked), 200);
  },
);

// The database's own enums: a new audit action is filterable as soon as the schema has it.
const AUDIT_ACTIONS = auditAction.enumValues;
const AUDIT_SUBJECTS = auditSubject.enumValues;

const auditQuery = z
  .object({
    action: z.enum(AUDIT_ACTIONS).optional(),
    actor: z.uuid().optional(),
    subject: z.enum(AUDIT_SUBJECTS).optional(),
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    ...pageQuery,
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), {
    message: "from must not be after to",
    path: ["from"],
  });

const auditSchema = z
  .object({
    id: z.string(),
    actorId: z.string().nullable(),
    action: z.string(),
    subject: z.string(),
    subjectId: z.string().nullable(),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    requestId: z.string().nullable(),
    createdAt: date(),
  })
  .openapi("AuditEntry");

async function auditPage(
  c: Parameters<Parameters<typeof readRoutes.openapi>[1]>[0],
  query: z.output<typeof auditQuery>,
  repoId?: string,
) {
  const rows = await listAudit(
    serviceContext(c, "read"),
    {
      repoId,
      action: query.action,
      actorId: query.actor,
      subject: query.subject,
      from: query.from ? new Date(query.from) : undefined,
      to: query.to ? new Date(query.to) : undefined,
    },
    { limit: query.limit + 1, after: decodeCursor(query.cursor, timeAndId) },
  );
  return toPage(rows, query.limit, withoutCursor, (r) => [r.cursorAt, r.id]);
}

readRoutes.openapi(
  route("repo:admin", {
    method: "get",
    path: "/repos/{repoId}/audit",
    tags: ["audit"],
    summary: "The repository's audit log, newest first",
    request: { params: repoParams, query: auditQuery },
    responses: { 200: json(pageOf(auditSchema), "A page of audit entries"), ...ERRORS },
  }),
  async (c) => c.json(await auditPage(c, c.req.valid("query"), c.req.valid("param").repoId), 200),
);

readRoutes.openapi(
  route("platform_admin", {
    method: "get",
    path: "/audit",
    tags: ["audit"],
    summary: "The whole audit log (platform admins)",
    request: { query: auditQuery },
    responses: { 200: json(pageOf(auditSchema), "A page of audit entries"), ...ERRORS },
  }),
  async (c) => c.json(await auditPage(c, c.req.valid("query")), 200),
);
