import { sql } from "drizzle-orm";
import type { ServiceContext } from "../context";

/**
 * Data subject requests (GDPR arts. 15 and 17): a person asks for a copy of their data or for its erasure;
 * a platform admin approves or rejects; the daily job (src/jobs/privacy-requests.ts) carries out approved
 * ones. States: pending → processing (approved) → completed or failed; pending → rejected. Every
 * transition is one SQL statement that moves the request only from the state it expects, appends the
 * event and writes the audit row, so a transition is all or nothing and never happens twice.
 *
 * Audit and event rows name people by id only; reasons typed by admins live in the event's message (the
 * request's own timeline), never in audit metadata.
 */

/**
 * The legal deadline: one month (GDPR art. 12(3)); due_at = requested_at + this many days. The Worker passes
 * DSR_DEADLINE_DAYS (src/env.ts), whose default this is.
 */
export const DEFAULT_DEADLINE_DAYS = 30;

export type RequestKind = "export" | "delete";
export type RequestStatus = "pending" | "processing" | "completed" | "failed" | "rejected";
const DB_TYPE = { export: "export", delete: "deletion" } as const;
const KIND = { export: "export", deletion: "delete" } as const;

export type RequestEvent = { status: RequestStatus; message: string | null; createdAt: Date };
export type RequestView = {
  id: string;
  userId: string;
  type: RequestKind;
  status: RequestStatus;
  requestedAt: Date;
  dueAt: Date;
  processedAt: Date | null;
  overdue: boolean;
  /** A completed export whose archive is still kept. */
  exportAvailable: boolean;
  events: RequestEvent[];
};

type Row = {
  id: string;
  userId: string;
  type: "export" | "deletion";
  status: RequestStatus;
  requestedAt: string;
  dueAt: string;
  processedAt: string | null;
  exportAvailable: boolean;
  events: { status: RequestStatus; message: string | null; createdAt: string }[] | null;
};

const OPEN = sql`('pending', 'processing')`;

const columns = sql`r.id, r.user_id as "userId", r.type, r.status, r.requested_at as "requestedAt",
  r.due_at as "dueAt", r.processed_at as "processedAt", (r.export_data is not null) as "exportAvailable",
  (select jsonb_agg(jsonb_build_object('status', e.status, 'message', e.message, 'createdAt', e.created_at)
     order by e.created_at, e.id) from data_subject_request_events e where e.request_id = r.id) as events`;

function view(row: Row, now: Date): RequestView {
  const dueAt = new Date(row.dueAt);
  const open = row.status === "pending" || row.status === "processing";
  return {
    id: row.id,
    userId: row.userId,
    type: KIND[row.type],
    status: row.status,
    requestedAt: new Date(row.requestedAt),
    dueAt,
    processedAt: row.processedAt ? new Date(row.processedAt) : null,
    overdue: open && dueAt.getTime() < now.getTime(),
    exportAvailable: row.exportAvailable,
    events: (row.events ?? []).map((e) => ({ ...e, createdAt: new Date(e.createdAt) })),
  };
}

/** Repositories where the user is the only admin: a deletion waits until each is handed over or deleted. */
export async function soleAdminRepos(
  ctx: ServiceContext,
  userId: string,
): Promise<{ id: string; owner: string; name: string }[]> {
  const result = await ctx.db.execute<{ id: string; owner: string; name: string }>(sql`
    select r.id, r.owner, r.name from user_repo_roles mine join repos r on r.id = mine.repo_id
    where mine.user_id = ${userId} and mine.role = 'admin'
      and not exists (select 1 from user_repo_roles other
                      where other.repo_id = mine.repo_id and other.role = 'admin' and other.user_id <> ${userId})
    order by r.owner, r.name`);
  return result.rows;
}

export function soleAdminMessage(repos: { owner: string; name: string }[]): string {
  const names = repos.map((r) => `${r.owner}/${r.name}`).join(", ");
  return (
    `You are the only admin of ${repos.length === 1 ? "a repository" : `${repos.length} repositories`} (${names}). ` +
    "Give another person the admin role on each, or delete it, then ask again."
  );
}

export type CreateOutcome =
  | { kind: "created"; request: RequestView }
  | { kind: "already_open"; requestId: string }
  | { kind: "sole_admin"; repos: { id: string; owner: string; name: string }[] };

export async function createRequest(
  ctx: ServiceContext,
  input: { userId: string; type: RequestKind; deadlineDays?: number },
): Promise<CreateOutcome> {
  if (input.type === "delete") {
    const repos = await soleAdminRepos(ctx, input.userId);
    if (repos.length) return { kind: "sole_admin", repos };
  }
  const now = ctx.now().toISOString();
  const type = DB_TYPE[input.type];
  const days = input.deadlineDays ?? DEFAULT_DEADLINE_DAYS;
  const action = input.type === "export" ? "dsr_export_request" : "dsr_deletion_request";
  const result = await ctx.db.execute<{ id: string; existing: boolean }>(sql`
    with open_request as (
      select id from data_subject_requests
      where user_id = ${input.userId} and type = ${type}::dsr_type and status in ${OPEN} limit 1
    ), created as (
      insert into data_subject_requests (user_id, type, requested_at, due_at)
      select ${input.userId}, ${type}::dsr_type, ${now}::timestamptz, ${now}::timestamptz + make_interval(days => ${days}::int)
      where not exists (select 1 from open_request)
      returning id
    ), event as (
      insert into data_subject_request_events (request_id, status, message, created_at)
      select id, 'pending', 'requested', ${now}::timestamptz from created
    ), audit as (
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, request_id, created_at)
      select ${input.userId}, ${action}::audit_action, 'dsr', id::text, 'data subject request created',
        jsonb_build_object('type', ${type}::text, 'status', 'pending'), ${ctx.requestId ?? null}, ${now}::timestamptz
      from created
    )
    select id, false as existing from created union all select id, true from open_request`);
  const row = result.rows[0];
  if (row.existing) return { kind: "already_open", requestId: row.id };
  const request = await getRequest(ctx, row.id);
  if (!request) throw new Error("a request just created cannot be read");
  return { kind: "created", request };
}

export async function getRequest(ctx: ServiceContext, id: string, userId?: string): Promise<RequestView | null> {
  const result = await ctx.db.execute<Row>(sql`
    select ${columns} from data_subject_requests r
    where r.id = ${id} ${userId ? sql`and r.user_id = ${userId}` : sql``}`);
  return result.rows[0] ? view(result.rows[0], ctx.now()) : null;
}

/** Newest first; at most `limit`. */
export async function listRequests(
  ctx: ServiceContext,
  filter: { userId?: string; status?: RequestStatus; limit: number },
): Promise<RequestView[]> {
  const result = await ctx.db.execute<Row>(sql`
    select ${columns} from data_subject_requests r
    where true ${filter.userId ? sql`and r.user_id = ${filter.userId}` : sql``}
      ${filter.status ? sql`and r.status = ${filter.status}::dsr_status` : sql``}
    order by r.requested_at desc, r.id desc limit ${filter.limit}`);
  const now = ctx.now();
  return result.rows.map((row) => view(row, now));
}

/**
 * Moves a request from `from` to `to` with its event and audit row, in one statement. False when the request
 * is not (or no longer) in `from`.
 */
export async function transition(
  ctx: ServiceContext,
  input: {
    id: string;
    from: RequestStatus;
    to: RequestStatus;
    message: string;
    description: string;
    metadata?: Record<string, unknown>;
    exportData?: Record<string, unknown> | null;
  },
): Promise<boolean> {
  const now = ctx.now().toISOString();
  // processed_at is when the request reached its end state; a later event on it (the export's purge) keeps it.
  const finished =
    input.from !== input.to && (input.to === "completed" || input.to === "failed" || input.to === "rejected");
  const exportData =
    input.exportData === undefined
      ? sql`export_data`
      : input.exportData === null
        ? sql`null`
        : sql`${JSON.stringify(input.exportData)}::jsonb`;
  const result = await ctx.db.execute<{ id: string }>(sql`
    with moved as (
      update data_subject_requests set status = ${input.to}::dsr_status,
        processed_at = ${finished ? sql`${now}::timestamptz` : sql`processed_at`},
        export_data = ${exportData},
        metadata = coalesce(metadata, '{}'::jsonb) || ${JSON.stringify(input.metadata ?? {})}::jsonb
      where id = ${input.id} and status = ${input.from}::dsr_status
      returning id, type
    ), event as (
      insert into data_subject_request_events (request_id, status, message, created_at)
      select id, ${input.to}::dsr_status, ${input.message}, ${now}::timestamptz from moved
    ), audit as (
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, request_id, created_at)
      select ${ctx.actorId ?? null}::uuid, 'other', 'dsr', id::text, ${input.description},
        jsonb_build_object('type', type, 'from', ${input.from}::text, 'to', ${input.to}::text)
          || ${JSON.stringify(input.metadata ?? {})}::jsonb,
        ${ctx.requestId ?? null}, ${now}::timestamptz
      from moved
    )
    select id from moved`);
  return result.rows.length === 1;
}

export type DecideOutcome =
  | { kind: "decided"; request: RequestView }
  | { kind: "not_found" }
  | { kind: "not_pending"; status: RequestStatus }
  | { kind: "sole_admin"; repos: { id: string; owner: string; name: string }[] };

/** A platform admin approves (the next daily run carries it out) or rejects a pending request, with a reason. */
export async function decideRequest(
  ctx: ServiceContext,
  input: { id: string; decision: "approve" | "reject"; reason: string },
): Promise<DecideOutcome> {
  const request = await getRequest(ctx, input.id);
  if (!request) return { kind: "not_found" };
  if (request.status !== "pending") return { kind: "not_pending", status: request.status };
  if (input.decision === "approve" && request.type === "delete") {
    const repos = await soleAdminRepos(ctx, request.userId);
    if (repos.length) return { kind: "sole_admin", repos };
  }
  const to = input.decision === "approve" ? "processing" : "rejected";
  const moved = await transition(ctx, {
    id: input.id,
    from: "pending",
    to,
    message: `${input.decision === "approve" ? "approved" : "rejected"}: ${input.reason}`,
    description: `data subject request ${input.decision === "approve" ? "approved" : "rejected"}`,
  });
  const now = await getRequest(ctx, input.id);
  if (!moved || !now) return { kind: "not_pending", status: now?.status ?? request.status };
  return { kind: "decided", request: now };
}
