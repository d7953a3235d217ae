import { z } from "zod";
import { canonicalUuid, isStorableText, issueDetails, UNSTORABLE_MESSAGE } from "../../contract/ingestion";
import { ApiError } from "../../lib/errors";

/**
 * The parts of GitHub's webhook deliveries the App uses (docs.github.com, "Webhook events and payloads"),
 * validated before anything is stored. Only the fields read are declared; GitHub's many others are dropped.
 * Hostile values are 400s, never 5xx: ids must be JSON integers that survive JSON.parse exactly (at most
 * 2^53 - 1; GitHub's are far below), strings must be storable by PostgreSQL and fit their columns.
 */

/**
 * Largest accepted delivery. GitHub caps payloads at 25 MB, but the events used here are small: a
 * workflow_run is tens of KiB; an `installation.created` for all of an organisation's repositories lists each
 * repository in about 120 bytes, so 2 MiB is room for some 15,000 repositories.
 */
export const GITHUB_WEBHOOK_MAX_BODY_BYTES = 2 * 1024 * 1024;

export const HEADERS = {
  event: "x-github-event",
  delivery: "x-github-delivery",
} as const;

/** The events handled, each with the actions that change something; anything else is acknowledged (202). */
export const HANDLED_ACTIONS = {
  installation: ["created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"],
  installation_repositories: ["added", "removed"],
  workflow_run: ["completed"],
} as const;

export type HandledEvent = keyof typeof HANDLED_ACTIONS;

/** GitHub's event names: lower-case words joined by underscores. */
const EVENT_NAME = /^[a-z][a-z_]{0,63}$/;

export interface DeliveryHeaders {
  event: string;
  /** X-GitHub-Delivery, a GUID, lower-cased. */
  deliveryId: string;
}

/** The event and delivery headers, or a 400 naming the one that is wrong. */
export function deliveryHeaders(headers: Headers): DeliveryHeaders {
  const event = headers.get(HEADERS.event) ?? "";
  if (!EVENT_NAME.test(event)) {
    throw new ApiError("bad_request", "X-GitHub-Event is missing or malformed.", [
      { path: "X-GitHub-Event", message: "must be a GitHub event name" },
    ]);
  }
  const deliveryId = canonicalUuid(headers.get(HEADERS.delivery) ?? "");
  if (!deliveryId) {
    throw new ApiError("bad_request", "X-GitHub-Delivery is missing or malformed.", [
      { path: "X-GitHub-Delivery", message: "must be a GUID" },
    ]);
  }
  return { event, deliveryId };
}

/** The delivery's GUID when the header holds one, for a failure's audit row; null otherwise. */
export function claimedDeliveryId(headers: Headers): string | null {
  return canonicalUuid(headers.get(HEADERS.delivery) ?? "");
}

export function isHandledEvent(event: string): event is HandledEvent {
  return Object.hasOwn(HANDLED_ACTIONS, event);
}

const text = (max: number) => z.string().max(max).refine(isStorableText, UNSTORABLE_MESSAGE);

/** A GitHub id (a 64-bit integer on GitHub's side), as a decimal string: the form it travels and is bound in. */
const githubId = z
  .number()
  .int()
  .min(1)
  .max(Number.MAX_SAFE_INTEGER)
  .transform((value) => String(value));

/** Repository names and owner logins: GitHub allows letters, digits, '.', '_' and '-'. */
const NAME_PART = /^[A-Za-z0-9._-]{1,100}$/;

const repository = z
  .object({
    id: githubId,
    name: z.string().regex(NAME_PART, "must be a GitHub repository name"),
    full_name: z.string().max(201),
    private: z.boolean(),
  })
  .transform((repo, ctx) => {
    const slash = repo.full_name.indexOf("/");
    const owner = repo.full_name.slice(0, slash);
    if (slash < 1 || !NAME_PART.test(owner) || repo.full_name.slice(slash + 1) !== repo.name) {
      ctx.addIssue({ code: "custom", path: ["full_name"], message: "must be <owner>/<name>" });
      return z.NEVER;
    }
    return { ghId: repo.id, owner, name: repo.name, private: repo.private };
  });

export type GithubRepository = z.output<typeof repository>;

const repositories = z.array(repository).max(50_000);

/** An account: a user or organization (login, type), or an enterprise (slug, no type). */
const account = z
  .object({
    id: githubId,
    login: text(255).min(1).optional(),
    slug: text(255).min(1).optional(),
    type: text(64).min(1).optional(),
  })
  .transform((value, ctx) => {
    const login = value.login ?? value.slug;
    if (login === undefined) {
      ctx.addIssue({ code: "custom", path: ["login"], message: "an account has a login or a slug" });
      return z.NEVER;
    }
    return { id: value.id, login, type: value.type ?? "Enterprise" };
  });

const timestamp = z.iso.datetime({ offset: true }).transform((value, ctx) => {
  const at = new Date(value);
  if (!(at.getUTCFullYear() >= 2000 && at.getUTCFullYear() <= 9999)) {
    ctx.addIssue({ code: "custom", message: "must be a date between 2000 and 9999" });
    return z.NEVER;
  }
  return at;
});

const installation = z
  .object({
    id: githubId,
    account: account,
    target_type: text(64).min(1),
    target_id: githubId.nullish(),
    permissions: z.record(text(100), text(100)).default({}),
    events: z.array(text(100)).max(500).default([]),
    suspended_at: timestamp.nullish(),
    suspended_by: z.object({ login: text(255) }).nullish(),
  })
  .transform((value) => ({
    installationId: value.id,
    accountId: value.account.id,
    accountType: value.account.type,
    accountLogin: value.account.login,
    targetType: value.target_type,
    targetId: value.target_id ?? null,
    permissions: value.permissions,
    events: value.events,
    suspendedAt: value.suspended_at ?? null,
    suspendedBy: value.suspended_at ? (value.suspended_by?.login ?? null) : null,
  }));

export type InstallationState = z.output<typeof installation>;

/** Who caused the event: the person installing or adding repositories (only the id is kept, never the login). */
const sender = z.object({ id: githubId }).nullish();

const installationEvent = z.object({
  action: z.enum(HANDLED_ACTIONS.installation),
  installation,
  repositories: repositories.nullish(),
  sender,
});

const installationRepositoriesEvent = z.object({
  action: z.enum(HANDLED_ACTIONS.installation_repositories),
  installation,
  sender,
  repositories_added: repositories.default([]),
  repositories_removed: z
    .array(z.object({ id: githubId }))
    .max(50_000)
    .default([]),
});

/** PostgreSQL integer: pull request numbers and run attempts. */
const int4 = z
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);

const workflowRunEvent = z.object({
  action: z.literal("completed"),
  installation: z.object({ id: githubId }),
  repository,
  workflow_run: z.object({
    id: githubId,
    run_attempt: int4,
    head_sha: z.string().regex(/^[0-9a-fA-F]{40}$/, "must be a 40-character commit SHA"),
    head_branch: text(1000).nullish(),
    pull_requests: z
      .array(z.object({ number: int4 }))
      .max(1000)
      .default([]),
  }),
});

export type InstallationEvent = z.output<typeof installationEvent>;
export type InstallationRepositoriesEvent = z.output<typeof installationRepositoriesEvent>;
export type WorkflowRunEvent = z.output<typeof workflowRunEvent>;

const SCHEMAS = {
  installation: installationEvent,
  installation_repositories: installationRepositoriesEvent,
  workflow_run: workflowRunEvent,
} as const;

export type ParsedEvent =
  | { event: "installation"; payload: InstallationEvent }
  | { event: "installation_repositories"; payload: InstallationRepositoriesEvent }
  | { event: "workflow_run"; payload: WorkflowRunEvent };

const actionOnly = z.object({ action: z.string().max(100).optional() });

/** The action of a handled event, when the body has one the App acts on; null for any other action. */
export function handledAction(event: HandledEvent, json: unknown): string | null {
  const parsed = actionOnly.safeParse(json);
  if (!parsed.success) throw new ApiError("validation_failed", "The payload is invalid.", issueDetails(parsed.error));
  const action = parsed.data.action;
  return action !== undefined && (HANDLED_ACTIONS[event] as readonly string[]).includes(action) ? action : null;
}

/** Validates a handled event's payload: a 400 naming the failing paths. */
export function parseEvent(event: HandledEvent, json: unknown): ParsedEvent {
  const parsed = SCHEMAS[event].safeParse(json);
  if (!parsed.success) throw new ApiError("validation_failed", "The payload is invalid.", issueDetails(parsed.error));
  return { event, payload: parsed.data } as ParsedEvent;
}
