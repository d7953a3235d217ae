import { env } from "cloudflare:workers";
import type {
  FakeArtifactCreated,
  FakeCheckRun,
  FakeFailureInput,
  FakeInstallationInput,
  FakeInstallationState,
  FakeRequestLogEntry,
  FakeWorkflowRunInput,
} from "../support/fake-github-api";

export type {
  FakeArtifactCreated,
  FakeArtifactInput,
  FakeCheckRun,
  FakeFailureInput,
  FakeInstallationState,
  FakeRequestLogEntry,
} from "../support/fake-github-api";

/**
 * The worker tests' handle on the run's fake GitHub (test/support/fake-github.ts) through its `/_fake/`
 * control endpoints. Its state is shared by every test file, so each test makes its own installation and
 * repositories (uniqueInstallationId, uniqueGithubRepo) rather than resetting anything.
 */
function fakeUrl(path: string): string {
  const base = env.GITHUB_API_URL;
  if (!base) throw new Error("GITHUB_API_URL is not bound (vitest.config.ts)");
  return `${base}${path}`;
}

async function control<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(fakeUrl(path), {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`fake GitHub ${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

const segment = (text: string) => encodeURIComponent(text);

/** A random installation id, as a decimal string like every GitHub id we keep. */
export function uniqueInstallationId(): string {
  return String(100_000_000 + Math.floor(Math.random() * 2_000_000_000));
}

/** A repository name no other test uses: { owner, name, fullName }. */
export function uniqueGithubRepo(prefix = "repo") {
  const owner = `acme-${crypto.randomUUID().slice(0, 8)}`;
  const name = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
  return { owner, name, fullName: `${owner}/${name}` };
}

/** Creates or replaces an installation and the repositories ("owner/name") it covers. */
export function putFakeInstallation(installationId: string, input: FakeInstallationInput) {
  return control<FakeInstallationState>("PUT", `/_fake/installations/${segment(installationId)}`, input);
}

/** The installation as the fake sees it, with how many tokens it has issued. */
export function fakeInstallation(installationId: string) {
  return control<FakeInstallationState>("GET", `/_fake/installations/${segment(installationId)}`);
}

/** Revokes the installation's tokens: the next call with one answers 401 Bad credentials. */
export function revokeFakeTokens(installationId: string) {
  return control<void>("DELETE", `/_fake/installations/${segment(installationId)}/tokens`);
}

/** Sets a workflow run's artifacts (zipped by the fake); returns their ids and the run's head sha. */
export function putFakeRunArtifacts(repo: { owner: string; name: string }, runId: string, input: FakeWorkflowRunInput) {
  return control<{ headSha: string; artifacts: FakeArtifactCreated[] }>(
    "PUT",
    `/_fake/repos/${segment(repo.owner)}/${segment(repo.name)}/runs/${segment(runId)}/artifacts`,
    input,
  );
}

/** The check runs created on a repository (optionally on one commit), with their latest state. */
export function fakeCheckRuns(repo: { owner: string; name: string }, headSha?: string) {
  const query = headSha ? `?head_sha=${segment(headSha)}` : "";
  return control<FakeCheckRun[]>("GET", `/_fake/repos/${segment(repo.owner)}/${segment(repo.name)}/check-runs${query}`);
}

/** Makes the next matching request(s) fail; see FakeFailureInput. */
export function injectFakeFailure(failure: FakeFailureInput) {
  return control<void>("POST", "/_fake/failures", failure);
}

/** GitHub's secondary rate limit: 403 with its documented message and Retry-After. */
export function injectSecondaryRateLimit(path: string, retryAfterSeconds: number, times = 1) {
  return injectFakeFailure({
    path,
    times,
    status: 403,
    headers: { "retry-after": String(retryAfterSeconds), "x-ratelimit-remaining": "4000" },
    body: {
      message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
      documentation_url:
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
    },
  });
}

/** The requests the fake answered for a repository or an installation, oldest first. */
export function fakeRequestLog(filter: { repo?: string; installationId?: string }) {
  return control<FakeRequestLogEntry[]>("GET", `/_fake/log${logQuery(filter)}`);
}

/** Requests to the blob store that carried an Authorization header (should be none). */
export function fakeBlobViolations(filter: { repo?: string; installationId?: string }) {
  return control<FakeRequestLogEntry[]>("GET", `/_fake/violations${logQuery(filter)}`);
}

function logQuery(filter: { repo?: string; installationId?: string }): string {
  const query = new URLSearchParams();
  if (filter.repo) query.set("repo", filter.repo);
  if (filter.installationId) query.set("installation", filter.installationId);
  const text = query.toString();
  return text ? `?${text}` : "";
}

/** API paths, for injecting failures on exactly the call a test means. */
export const githubPaths = {
  accessTokens: (installationId: string) => `/app/installations/${installationId}/access_tokens`,
  runArtifacts: (repo: { owner: string; name: string }, runId: string) =>
    `/repos/${repo.owner}/${repo.name}/actions/runs/${runId}/artifacts`,
  artifactZip: (repo: { owner: string; name: string }, artifactId: string) =>
    `/repos/${repo.owner}/${repo.name}/actions/artifacts/${artifactId}/zip`,
  checkRuns: (repo: { owner: string; name: string }) => `/repos/${repo.owner}/${repo.name}/check-runs`,
  checkRun: (repo: { owner: string; name: string }, checkRunId: string) =>
    `/repos/${repo.owner}/${repo.name}/check-runs/${checkRunId}`,
};
