import { type SQL, sql } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { type Delivery, deliveryCte } from "./deliveries";
import type {
  GithubRepository,
  InstallationEvent,
  InstallationRepositoriesEvent,
  InstallationState,
} from "./webhook-payloads";

/**
 * `installation` and `installation_repositories` deliveries keep github_app_installations and the linked
 * repositories true. A repository reached through an installation is a `repos` row with its GitHub id in
 * gh_id: it needs no signing secret, since the App fetches its reports itself.
 *
 * Each delivery is one SQL statement (so one transaction, and all or nothing): the delivery row, the
 * installation's upsert or delete, the repositories' rows and one audit row. The audit row names the
 * installation and repositories by id only, never the account's or sender's login.
 */

export interface InstallationChangeResult {
  /** False when the delivery id was already recorded: nothing changed. */
  applied: boolean;
  createdRepoIds: string[];
  linkedRepoIds: string[];
  renamedRepoIds: string[];
}

/** How a delivery changes the installation's repository_ids. */
type RepositorySet =
  /** The payload lists every repository the installation reaches (installation events that carry the list). */
  | { kind: "replace"; repositories: GithubRepository[] }
  /** The payload says nothing of repositories. */
  | { kind: "keep" }
  | { kind: "add"; repositories: GithubRepository[] }
  | { kind: "remove"; ghIds: string[] };

const DESCRIPTIONS: Record<string, string> = {
  "installation.created": "GitHub App installed",
  "installation.deleted": "GitHub App uninstalled",
  "installation.suspend": "GitHub App installation suspended",
  "installation.unsuspend": "GitHub App installation unsuspended",
  "installation.new_permissions_accepted": "GitHub App installation accepted new permissions",
  "installation_repositories.added": "Repositories added to a GitHub App installation",
  "installation_repositories.removed": "Repositories removed from a GitHub App installation",
};

export async function applyInstallationEvent(
  ctx: ServiceContext,
  deliveryId: string,
  payload: InstallationEvent,
): Promise<InstallationChangeResult> {
  const delivery = deliveryOf(deliveryId, "installation", payload.action, payload.installation);
  if (payload.action === "deleted") return deleteInstallation(ctx, delivery);
  const set: RepositorySet = payload.repositories
    ? { kind: "replace", repositories: payload.repositories }
    : { kind: "keep" };
  return upsertInstallation(ctx, delivery, payload.installation, set, payload.sender?.id ?? null);
}

export async function applyInstallationRepositoriesEvent(
  ctx: ServiceContext,
  deliveryId: string,
  payload: InstallationRepositoriesEvent,
): Promise<InstallationChangeResult> {
  const delivery = deliveryOf(deliveryId, "installation_repositories", payload.action, payload.installation);
  const set: RepositorySet =
    payload.action === "added"
      ? { kind: "add", repositories: payload.repositories_added }
      : { kind: "remove", ghIds: payload.repositories_removed.map((repo) => repo.id) };
  return upsertInstallation(ctx, delivery, payload.installation, set, payload.sender?.id ?? null);
}

function deliveryOf(deliveryId: string, event: string, action: string, installation: InstallationState): Delivery {
  return { deliveryId, event, action, installationId: installation.installationId };
}

/** A JSON array of decimal ids as bigint[]. */
const bigintArray = (ids: string[]) =>
  sql`coalesce((select array_agg(value::bigint) from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)), '{}'::bigint[])`;

function auditCte(ctx: ServiceContext, delivery: Delivery, extra: SQL): SQL {
  const key = `${delivery.event}.${delivery.action}`;
  return sql`audit as (
    insert into audit_logs (action, subject, subject_id, description, metadata, request_id, created_at)
    select 'config_updated'::audit_action, 'system'::audit_subject, ${delivery.installationId},
      ${DESCRIPTIONS[key] ?? key},
      jsonb_build_object('installationId', ${delivery.installationId}::text, 'event', ${delivery.event}::text,
        'action', ${delivery.action}::text, 'deliveryId', ${delivery.deliveryId}::text) || ${extra},
      ${ctx.requestId ?? null}, ${ctx.now().toISOString()}::timestamptz
    from delivery
  )`;
}

async function upsertInstallation(
  ctx: ServiceContext,
  delivery: Delivery,
  installation: InstallationState,
  set: RepositorySet,
  senderGithubId: string | null,
): Promise<InstallationChangeResult> {
  const now = sql`${ctx.now().toISOString()}::timestamptz`;
  const linking = set.kind === "replace" || set.kind === "add" ? set.repositories : [];
  const named = set.kind === "remove" ? set.ghIds : linking.map((repo) => repo.ghId);
  const initial = set.kind === "replace" || set.kind === "add" ? bigintArray(named) : sql`'{}'::bigint[]`;
  const merged = {
    replace: sql`excluded.repository_ids`,
    keep: sql`gi.repository_ids`,
    add: sql`array(select distinct id from unnest(gi.repository_ids || excluded.repository_ids) as id order by id)`,
    remove: sql`array(select id from unnest(gi.repository_ids) as id where id <> all(${bigintArray(named)}))`,
  }[set.kind];
  const input = JSON.stringify(
    linking.map((repo) => ({ gh_id: repo.ghId, owner: repo.owner, name: repo.name, private: repo.private })),
  );
  const idsOf = (cte: string) => sql`coalesce((select jsonb_agg(id order by id) from ${sql.raw(cte)}), '[]'::jsonb)`;

  const result = await ctx.db.execute<{ applied: boolean; created: string[]; linked: string[]; renamed: string[] }>(sql`
    with ${deliveryCte(ctx, delivery, sql`'applied'`)},
    input as (
      select distinct on (r.gh_id) r.gh_id, r.owner, r.name, r.private
      from jsonb_to_recordset(${input}::jsonb) as r(gh_id bigint, owner text, name text, private boolean)
      where exists (select 1 from delivery)
      order by r.gh_id
    ),
    installation as (
      insert into github_app_installations as gi (installation_id, account_id, account_type, account_login,
        target_type, target_id, repository_ids, permissions, events, suspended_at, suspended_by, created_at, updated_at)
      select ${installation.installationId}::bigint, ${installation.accountId}::bigint, ${installation.accountType},
        ${installation.accountLogin}, ${installation.targetType}, ${installation.targetId}::bigint, ${initial},
        ${JSON.stringify(installation.permissions)}::jsonb,
        (select coalesce(array_agg(value), '{}'::text[])
          from jsonb_array_elements_text(${JSON.stringify(installation.events)}::jsonb)),
        ${installation.suspendedAt?.toISOString() ?? null}::timestamptz, ${installation.suspendedBy}, ${now}, ${now}
      where exists (select 1 from delivery)
      on conflict (installation_id) do update set
        account_id = excluded.account_id, account_type = excluded.account_type,
        account_login = excluded.account_login, target_type = excluded.target_type, target_id = excluded.target_id,
        permissions = excluded.permissions, events = excluded.events,
        suspended_at = excluded.suspended_at, suspended_by = excluded.suspended_by,
        suspended_reason = case when excluded.suspended_at is null then null else gi.suspended_reason end,
        repository_ids = ${merged}, updated_at = excluded.updated_at
      returning id
    ),
    -- Renamed or transferred on GitHub: the linked row follows, unless another row already has the new name.
    renamed as (
      update repos set owner = input.owner, name = input.name, updated_at = ${now}
      from input
      where repos.gh_id = input.gh_id and (repos.owner <> input.owner or repos.name <> input.name)
        and not exists (select 1 from repos other where other.owner = input.owner and other.name = input.name)
      returning repos.id
    ),
    -- A repository registered by hand before the App was installed: linked, and keeps its data and secrets.
    linked as (
      update repos set gh_id = input.gh_id, updated_at = ${now}
      from input
      where repos.owner = input.owner and repos.name = input.name and repos.gh_id is null
        and not exists (select 1 from repos other where other.gh_id = input.gh_id)
      returning repos.id
    ),
    created as (
      insert into repos (owner, name, gh_id, visibility, created_at, updated_at)
      select input.owner, input.name, input.gh_id,
        (case when input.private then 'private' else 'public' end)::repo_visibility, ${now}, ${now}
      from input
      where not exists (
        select 1 from repos r where r.gh_id = input.gh_id or (r.owner = input.owner and r.name = input.name))
      on conflict do nothing
      returning id
    ),
    -- A repository the App creates would have nobody to read it: the person who installed the App (or added
    -- the repository to it), when they have an anchorpipe account linked to their GitHub id, becomes its admin.
    installer as (
      select u.id from users u
      where u.github_id = ${senderGithubId}::text and u.deleted_at is null and exists (select 1 from created)
    ),
    installer_roles as (
      insert into user_repo_roles (user_id, repo_id, role, assigned_by, updated_at)
      select installer.id, created.id, 'admin', installer.id, ${now} from installer cross join created
      on conflict (user_id, repo_id) do nothing
      returning user_id, repo_id
    ),
    installer_history as (
      insert into role_audit_logs (actor_id, target_user_id, repo_id, action, old_role, new_role, created_at)
      select user_id, user_id, repo_id, 'assigned', null, 'admin', ${now} from installer_roles
    ),
    installer_audit as (
      insert into audit_logs (actor_id, action, subject, subject_id, description, metadata, request_id, created_at)
      select user_id, 'role_assigned', 'repo', repo_id, 'role assigned: installed the GitHub App',
        jsonb_build_object('targetUserId', user_id::text, 'oldRole', null, 'newRole', 'admin',
          'installationId', ${delivery.installationId}::text),
        ${ctx.requestId ?? null}, ${now}
      from installer_roles
    ),
    ${auditCte(
      ctx,
      delivery,
      sql`jsonb_build_object('repositoryIds', ${JSON.stringify(named)}::jsonb,
        'createdRepoIds', ${idsOf("created")}, 'linkedRepoIds', ${idsOf("linked")},
        'renamedRepoIds', ${idsOf("renamed")})`,
    )}
    select exists (select 1 from delivery) as applied,
      array(select id::text from created order by id) as created,
      array(select id::text from linked order by id) as linked,
      array(select id::text from renamed order by id) as renamed`);
  const row = result.rows[0];
  return {
    applied: row.applied,
    createdRepoIds: row.created,
    linkedRepoIds: row.linked,
    renamedRepoIds: row.renamed,
  };
}

/** The installation row goes; its repositories stay, with their data, no longer covered by an installation. */
async function deleteInstallation(ctx: ServiceContext, delivery: Delivery): Promise<InstallationChangeResult> {
  const result = await ctx.db.execute<{ applied: boolean }>(sql`
    with ${deliveryCte(ctx, delivery, sql`'applied'`)},
    gone as (
      delete from github_app_installations
      where installation_id = ${delivery.installationId}::bigint and exists (select 1 from delivery)
      returning repository_ids
    ),
    ${auditCte(
      ctx,
      delivery,
      sql`jsonb_build_object('repositoryIds',
        coalesce((select to_jsonb(repository_ids::text[]) from gone), '[]'::jsonb))`,
    )}
    select exists (select 1 from delivery) as applied`);
  return { applied: result.rows[0].applied, createdRepoIds: [], linkedRepoIds: [], renamedRepoIds: [] };
}
