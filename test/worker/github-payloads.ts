import { env, exports } from "cloudflare:workers";
import { createApp } from "../../src/app";

/**
 * GitHub webhook deliveries for the tests, shaped like GitHub's documented examples ("Webhook events and
 * payloads": installation, installation_repositories, workflow_run, ping), with the fields GitHub sends that
 * the Worker ignores left in. Ids and names are fresh per call so tests sharing the database never meet.
 */

let sequence = 0;
/** A GitHub id no other test uses: random high bits, a counter below. */
export function githubId(): number {
  sequence += 1;
  return (Math.floor(Math.random() * 2 ** 20) + 1) * 2 ** 30 + sequence;
}

export const uniqueOwner = (label = "org") => `${label}-${crypto.randomUUID().slice(0, 8)}`;

export interface RepoSpec {
  id: number;
  owner: string;
  name: string;
  private?: boolean;
}

export function repoSpec(owner: string, name: string, isPrivate = false): RepoSpec {
  return { id: githubId(), owner, name, private: isPrivate };
}

const user = (login: string, id: number, type = "User") => ({
  login,
  id,
  node_id: `MDQ6VXNlcj${id}`,
  avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
  gravatar_id: "",
  url: `https://api.github.com/users/${login}`,
  html_url: `https://github.com/${login}`,
  type,
  site_admin: false,
});

/** The short repository form of installation events. */
const shortRepo = (repo: RepoSpec) => ({
  id: repo.id,
  node_id: `MDEwOlJlcG9zaXRvcnk${repo.id}`,
  name: repo.name,
  full_name: `${repo.owner}/${repo.name}`,
  private: repo.private ?? false,
});

export interface InstallationSpec {
  id: number;
  account: { login: string; id: number; type: "User" | "Organization" };
  permissions?: Record<string, string>;
  events?: string[];
  suspendedAt?: string | null;
  suspendedBy?: string | null;
}

export function installationSpec(overrides: Partial<InstallationSpec> = {}): InstallationSpec {
  return {
    id: githubId(),
    account: { login: uniqueOwner(), id: githubId(), type: "Organization" },
    ...overrides,
  };
}

export function installationObject(spec: InstallationSpec) {
  return {
    id: spec.id,
    client_id: "Iv1.8a61f9b3a7aba766",
    account: user(spec.account.login, spec.account.id, spec.account.type),
    repository_selection: "selected",
    access_tokens_url: `https://api.github.com/app/installations/${spec.id}/access_tokens`,
    repositories_url: "https://api.github.com/installation/repositories",
    html_url: `https://github.com/organizations/${spec.account.login}/settings/installations/${spec.id}`,
    app_id: 424242,
    app_slug: "anchorpipe",
    target_id: spec.account.id,
    target_type: spec.account.type,
    permissions: spec.permissions ?? { actions: "read", checks: "write", metadata: "read", pull_requests: "read" },
    events: spec.events ?? ["workflow_run"],
    created_at: "2026-11-02T10:00:00.000Z",
    updated_at: "2026-11-02T10:00:00.000Z",
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    suspended_by: spec.suspendedBy ? user(spec.suspendedBy, 9) : null,
    suspended_at: spec.suspendedAt ?? null,
  };
}

const sender = () => user("octocat", 1);

/** `installation` (created, deleted, suspend, unsuspend, new_permissions_accepted). */
export function installationEvent(
  action: string,
  spec: InstallationSpec,
  repositories?: RepoSpec[],
  by?: { login: string; id: number },
) {
  return {
    action,
    installation: installationObject(spec),
    ...(repositories ? { repositories: repositories.map(shortRepo) } : {}),
    requester: null,
    sender: by ? user(by.login, by.id) : sender(),
  };
}

/** `installation_repositories` (added, removed). */
export function installationRepositoriesEvent(
  action: "added" | "removed",
  spec: InstallationSpec,
  repositories: RepoSpec[],
) {
  return {
    action,
    installation: installationObject(spec),
    repository_selection: "selected",
    repositories_added: action === "added" ? repositories.map(shortRepo) : [],
    repositories_removed: action === "removed" ? repositories.map(shortRepo) : [],
    requester: null,
    sender: sender(),
  };
}

export interface RunSpec {
  id?: number;
  attempt?: number;
  headSha?: string;
  headBranch?: string | null;
  pullRequests?: number[];
  conclusion?: string;
}

/** `workflow_run` completed, from a pull request's workflow. */
export function workflowRunEvent(installationId: number, repo: RepoSpec, run: RunSpec = {}, action = "completed") {
  const id = run.id ?? githubId();
  const headSha = run.headSha ?? "a".repeat(40);
  const full = `${repo.owner}/${repo.name}`;
  const repository = {
    ...shortRepo(repo),
    owner: user(repo.owner, githubId(), "Organization"),
    html_url: `https://github.com/${full}`,
    description: null,
    fork: false,
    url: `https://api.github.com/repos/${full}`,
    default_branch: "main",
  };
  return {
    action,
    workflow_run: {
      id,
      name: "CI",
      node_id: `WFR_${id}`,
      head_branch: run.headBranch === undefined ? "feature/flaky" : run.headBranch,
      head_sha: headSha,
      path: ".github/workflows/ci.yml",
      display_title: "Fix the thing",
      run_number: 562,
      event: "pull_request",
      status: "completed",
      conclusion: run.conclusion ?? "failure",
      workflow_id: 159038,
      check_suite_id: 414944374,
      url: `https://api.github.com/repos/${full}/actions/runs/${id}`,
      html_url: `https://github.com/${full}/actions/runs/${id}`,
      pull_requests: (run.pullRequests ?? [7]).map((number) => ({
        url: `https://api.github.com/repos/${full}/pulls/${number}`,
        id: githubId(),
        number,
        head: { ref: "feature/flaky", sha: headSha, repo: { id: repo.id, url: repository.url, name: repo.name } },
        base: { ref: "main", sha: "b".repeat(40), repo: { id: repo.id, url: repository.url, name: repo.name } },
      })),
      created_at: "2026-11-02T10:00:00Z",
      updated_at: "2026-11-02T10:05:00Z",
      actor: sender(),
      run_attempt: run.attempt ?? 1,
      run_started_at: "2026-11-02T10:00:00Z",
      triggering_actor: sender(),
      artifacts_url: `https://api.github.com/repos/${full}/actions/runs/${id}/artifacts`,
      head_commit: { id: headSha, tree_id: "c".repeat(40), message: "Fix the thing" },
      repository,
      head_repository: repository,
    },
    workflow: { id: 159038, name: "CI", path: ".github/workflows/ci.yml", state: "active" },
    repository,
    sender: sender(),
    installation: { id: installationId, node_id: `MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u${installationId}` },
  };
}

export function pingEvent() {
  return {
    zen: "Design for failure.",
    hook_id: 30,
    hook: {
      type: "App",
      id: 30,
      name: "web",
      active: true,
      events: ["workflow_run"],
      config: { content_type: "json", insecure_ssl: "0", url: "https://example.com/api/webhooks/github" },
      updated_at: "2026-11-02T10:00:00Z",
      created_at: "2026-11-02T10:00:00Z",
      app_id: 424242,
      deliveries_url: "https://api.github.com/app/hook/deliveries",
    },
  };
}

const encoder = new TextEncoder();

/** X-Hub-Signature-256 as GitHub computes it: `sha256=` and the hex HMAC-SHA256 of the body bytes. */
export async function signGithub(body: string | Uint8Array, secret = env.GITHUB_WEBHOOK_SECRET as string) {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes));
  return `sha256=${[...mac].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export interface DeliverOptions {
  deliveryId?: string;
  /** Replaces the computed signature; null leaves the header out. */
  signature?: string | null;
  /** Replace or add headers (spelled as above: X-GitHub-Event, X-GitHub-Delivery, Content-Type). */
  headers?: Record<string, string>;
  /** Headers to leave out. */
  omit?: string[];
  /** Sent instead of the JSON of the payload (signed as sent unless `signature` is given). */
  rawBody?: Uint8Array;
  /** Bindings for a fresh app (a queue stand-in, strict limiters, no secret); default: the Worker itself. */
  bindings?: Cloudflare.Env;
}

/** Posts a delivery as GitHub does (signed with the run's webhook secret). */
export async function deliver(event: string, payload: unknown, options: DeliverOptions = {}): Promise<Response> {
  const bytes = options.rawBody ?? encoder.encode(JSON.stringify(payload));
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "User-Agent": "GitHub-Hookshot/044aadd",
    "X-GitHub-Event": event,
    "X-GitHub-Delivery": options.deliveryId ?? crypto.randomUUID(),
    "X-GitHub-Hook-ID": "30",
    "X-GitHub-Hook-Installation-Target-Type": "integration",
    "X-GitHub-Hook-Installation-Target-ID": "424242",
  };
  const signature = options.signature === undefined ? await signGithub(bytes) : options.signature;
  if (signature !== null) headers["X-Hub-Signature-256"] = signature;
  const sent = { ...headers, ...options.headers };
  for (const name of options.omit ?? []) delete sent[name];
  const init = { method: "POST", headers: sent, body: bytes };
  if (!options.bindings) return exports.default.fetch("http://worker/api/webhooks/github", init);
  const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
  return createApp().fetch(new Request("http://worker/api/webhooks/github", init), options.bindings, ctx);
}
