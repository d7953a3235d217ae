import { exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { createApp } from "../../src/app";
import { createRepo } from "../../src/services/repos";
import { setRole } from "../../src/services/roles";
import { createToken } from "../../src/services/tokens";
import { createUser } from "../../src/services/users";
import { serviceContext, testDb } from "./ingestion-support";

/** A person with a personal token, made through the same services the API and the tools use. */
export async function person(options: { platformAdmin?: boolean; days?: number } = {}) {
  const login = `user-${crypto.randomUUID().slice(0, 8)}`;
  const user = await createUser(serviceContext(), {
    login,
    name: `Name ${login}`,
    isPlatformAdmin: options.platformAdmin,
  });
  const { token } = await createToken(serviceContext(), { userId: user.id, days: options.days });
  return { id: user.id, login, token };
}

export type Person = Awaited<ReturnType<typeof person>>;

/** A repository whose admin is `admin`, plus people with each other role on it. */
export async function repoWithPeople() {
  const admin = await person();
  const member = await person();
  const reader = await person();
  const repo = await createRepo(serviceContext(), admin.id, {
    owner: `org-${crypto.randomUUID().slice(0, 8)}`,
    name: "api",
  });
  for (const [user, role] of [
    [member, "member"],
    [reader, "read_only"],
  ] as const) {
    await setRole(serviceContext(), { actorId: admin.id, repoId: repo.id, userId: user.id, role });
  }
  return { repoId: repo.id, admin, member, reader };
}

/** A request to the Worker as a user would make it. */
export async function api(
  method: string,
  path: string,
  options: {
    token?: string;
    body?: unknown;
    /** Sent as it is, instead of `body` as JSON. */
    rawBody?: string;
    headers?: Record<string, string>;
    bindings?: Cloudflare.Env;
  } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const init = { method, headers, body };
  if (!options.bindings) return exports.default.fetch(`http://worker${path}`, init);
  const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
  return createApp().fetch(new Request(`http://worker${path}`, init), options.bindings, ctx);
}

/** Row counts of everything an API mutation on a repository can touch, for "unchanged" checks. */
export async function repoState(repoId: string) {
  const result = await testDb().execute<{ digest: string }>(sql`
    select md5(
      coalesce((select string_agg(t::text, '|' order by t::text) from repos t where id = ${repoId}), '') ||
      coalesce((select string_agg(t::text, '|' order by t::text) from user_repo_roles t where repo_id = ${repoId}), '') ||
      coalesce((select string_agg(t::text, '|' order by t::text) from role_audit_logs t where repo_id = ${repoId}), '') ||
      coalesce((select string_agg(t::text, '|' order by t::text) from hmac_secrets t where repo_id = ${repoId}), '') ||
      coalesce((select string_agg(t::text, '|' order by t::text) from repository_configs t where repo_id = ${repoId}), '') ||
      coalesce((select string_agg(t::text, '|' order by t::text) from audit_logs t where subject_id = ${repoId}), '')
    ) as digest`);
  return result.rows[0].digest;
}
