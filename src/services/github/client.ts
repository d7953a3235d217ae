import { concatBytes } from "../../lib/body";
import { type CachedToken, createAppJwt, installationTokens, keyFingerprint, toPkcs8Pem } from "./app-auth";

/**
 * The GitHub REST calls the App makes, authenticated as the App (a JWT signed with its private key) exchanged
 * for installation tokens (app-auth.ts). Every failure is a GithubApiError saying whether a retry can help,
 * so the queue consumer can retry or give up without knowing HTTP.
 */

export interface GithubAppCredentials {
  /** GITHUB_API_URL: https://api.github.com, or the tests' fake. */
  apiUrl: string;
  appId: string;
  /** PEM, PKCS#1 as GitHub downloads it, or PKCS#8. */
  privateKey: string;
}

export interface RepoRef {
  owner: string;
  name: string;
}

export interface GithubArtifact {
  id: string;
  name: string;
  sizeInBytes: number;
  expired: boolean;
  /** "sha256:…" when GitHub gives one. */
  digest: string | null;
}

export interface CheckRunInput {
  name: string;
  headSha: string;
  status: "completed";
  conclusion: "success" | "failure" | "neutral";
  output: { title: string; summary: string; text?: string };
  /** Ours, so a check run can be found again: the github_workflow_runs id. */
  externalId?: string;
}

export interface GithubClient {
  /** Every artifact of a workflow run (all pages). */
  listRunArtifacts(installationId: string, repo: RepoRef, workflowRunId: string): Promise<GithubArtifact[]>;
  /** The artifact's zip; GithubApiError (not retryable) when it is larger than maxBytes. */
  downloadArtifact(installationId: string, repo: RepoRef, artifactId: string, maxBytes: number): Promise<Uint8Array>;
  createCheckRun(installationId: string, repo: RepoRef, input: CheckRunInput): Promise<{ id: string }>;
  updateCheckRun(installationId: string, repo: RepoRef, checkRunId: string, input: CheckRunInput): Promise<void>;
}

/** Why a call failed, when the caller may act on it beyond retrying. */
export type GithubErrorCode = "artifact_too_large" | "artifact_expired" | "rate_limited";

/** A GitHub call that failed: `retryable` for 5xx, 429, rate limits and network errors. */
export class GithubApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
    readonly retryAfterSeconds: number | null = null,
    readonly code: GithubErrorCode | null = null,
  ) {
    super(message);
    this.name = "GithubApiError";
  }
}

const API_VERSION = "2022-11-28";
const USER_AGENT = "anchorpipe-github-app";
const PER_PAGE = 100;
/** 100 pages of 100: far beyond a real run's artifacts, and a bound on a Link header that never ends. */
const MAX_PAGES = 100;
/** When GitHub names a secondary rate limit without Retry-After, its docs say to wait at least a minute. */
const SECONDARY_LIMIT_WAIT_SECONDS = 60;

function retryAfter(response: Response, now: Date): number | null {
  const header = response.headers.get("retry-after");
  if (header) {
    const seconds = /^\d+$/.test(header.trim()) ? Number(header) : (Date.parse(header) - now.getTime()) / 1000;
    if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  }
  if (response.headers.get("x-ratelimit-remaining") === "0") {
    const reset = Number(response.headers.get("x-ratelimit-reset"));
    if (reset > 0) return Math.max(0, Math.ceil(reset - now.getTime() / 1000));
  }
  return null;
}

/** The failed response as a GithubApiError; reads (and so releases) its body. */
async function responseError(what: string, response: Response, now: Date): Promise<GithubApiError> {
  let message = "";
  try {
    const text = await response.text();
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      message = typeof parsed.message === "string" ? parsed.message : "";
    } catch {
      message = "";
    }
  } catch {
    message = "";
  }
  const status = response.status;
  const summary = `GitHub ${what}: ${status}${message ? ` ${message.slice(0, 200)}` : ""}`;
  const wait = retryAfter(response, now);
  // GitHub answers a rate limit with 403 or 429: a primary one says so in its headers, a secondary one in its
  // message and usually Retry-After. Any other 403 (a missing permission, a suspended installation) is final.
  const rateLimited =
    status === 429 ||
    (status === 403 &&
      (wait !== null || response.headers.get("x-ratelimit-remaining") === "0" || /rate limit/i.test(message)));
  if (rateLimited) {
    return new GithubApiError(summary, status, true, wait ?? SECONDARY_LIMIT_WAIT_SECONDS, "rate_limited");
  }
  if (status >= 500) return new GithubApiError(summary, status, true, wait);
  return new GithubApiError(summary, status, false);
}

/** The rel="next" URL of a Link header. */
function nextLink(link: string | null): string | null {
  if (!link) return null;
  for (const part of link.split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (match) return match[1]!;
  }
  return null;
}

function sameOrigin(url: string, base: string): boolean {
  try {
    return new URL(url).origin === new URL(base).origin;
  } catch {
    return false;
  }
}

interface ArtifactJson {
  id: number;
  name: string;
  size_in_bytes: number;
  expired: boolean;
  digest?: string | null;
}

function checkRunBody(input: CheckRunInput, now: Date, creating: boolean) {
  return {
    name: input.name,
    ...(creating ? { head_sha: input.headSha } : {}),
    status: input.status,
    conclusion: input.conclusion,
    completed_at: now.toISOString(),
    output: input.output,
    ...(input.externalId === undefined ? {} : { external_id: input.externalId }),
  };
}

/**
 * The body read up to maxBytes, refused beyond: by Content-Length before reading, and while streaming for
 * an answer without one (or one that lies). Joining the pieces briefly holds the zip twice, so memory
 * peaks near 2 × maxBytes: the caller's limit must leave room for that within a Worker's 128 MB.
 */
async function readLimited(response: Response, maxBytes: number, what: string): Promise<Uint8Array> {
  const tooLarge = () =>
    new GithubApiError(
      `GitHub ${what}: larger than ${maxBytes} bytes`,
      response.status,
      false,
      null,
      "artifact_too_large",
    );
  const declared = response.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return concatBytes(chunks, total);
}

export function createGithubClient(
  credentials: GithubAppCredentials,
  options: { fetch?: typeof fetch; now?: () => Date } = {},
): GithubClient {
  // Called through a closure: workerd refuses a fetch detached from its global ("Illegal invocation").
  const fetcher = options.fetch ?? ((input, init) => fetch(input, init));
  const now = options.now ?? (() => new Date());
  const apiUrl = credentials.apiUrl.replace(/\/+$/, "");
  let privateKey: string | null = null;
  let cachePrefix: Promise<string> | null = null;

  function pkcs8(): string {
    privateKey ??= toPkcs8Pem(credentials.privateKey);
    return privateKey;
  }

  /** fetch, with a network failure (no answer at all) as a retryable GithubApiError. */
  async function send(what: string, url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetcher(url, init);
    } catch (cause) {
      const error = new GithubApiError(`GitHub ${what}: no answer (${(cause as Error).name})`, null, true);
      throw Object.assign(error, { cause });
    }
  }

  function headers(authorization: string | null, extra: Record<string, string> = {}): Record<string, string> {
    return {
      accept: "application/vnd.github+json",
      "x-github-api-version": API_VERSION,
      "user-agent": USER_AGENT,
      ...(authorization ? { authorization } : {}),
      ...extra,
    };
  }

  async function exchange(installationId: string): Promise<CachedToken> {
    const what = "installation token";
    const jwt = await createAppJwt(credentials.appId, pkcs8(), now());
    const response = await send(
      what,
      `${apiUrl}/app/installations/${encodeURIComponent(installationId)}/access_tokens`,
      {
        method: "POST",
        headers: headers(`Bearer ${jwt}`),
      },
    );
    if (!response.ok) throw await responseError(what, response, now());
    const body = (await response.json()) as { token?: unknown; expires_at?: unknown };
    const expiresAtMs = typeof body.expires_at === "string" ? Date.parse(body.expires_at) : Number.NaN;
    if (typeof body.token !== "string" || !Number.isFinite(expiresAtMs)) {
      throw new GithubApiError(`GitHub ${what}: unexpected answer`, response.status, true);
    }
    return { token: body.token, expiresAtMs };
  }

  async function tokenKey(installationId: string): Promise<string> {
    cachePrefix ??= keyFingerprint(pkcs8()).then((fingerprint) => `${apiUrl} ${credentials.appId} ${fingerprint}`);
    return `${await cachePrefix} ${installationId}`;
  }

  /**
   * A request with the installation's token. A 401 means the cached token was revoked or expired early:
   * it is dropped and the request made once more with a fresh one.
   */
  async function call(
    installationId: string,
    what: string,
    url: string,
    init: { method: string; body?: unknown; redirect?: "follow" | "manual" },
  ): Promise<Response> {
    const key = await tokenKey(installationId);
    let lastToken = "";
    for (let attempt = 0; attempt < 2; attempt++) {
      lastToken = await installationTokens.get(key, now(), () => exchange(installationId));
      const response = await send(what, url, {
        method: init.method,
        redirect: init.redirect ?? "follow",
        headers: headers(
          `Bearer ${lastToken}`,
          init.body === undefined ? {} : { "content-type": "application/json; charset=utf-8" },
        ),
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      if (response.status !== 401 || attempt === 1) return response;
      await response.body?.cancel();
      installationTokens.drop(key, lastToken);
    }
    throw new Error("unreachable");
  }

  function repoPath(repo: RepoRef): string {
    return `${apiUrl}/repos/${encodeURIComponent(repo.owner)}/${encodeURIComponent(repo.name)}`;
  }

  return {
    async listRunArtifacts(installationId, repo, workflowRunId) {
      const what = "list artifacts";
      const artifacts: GithubArtifact[] = [];
      let url: string | null =
        `${repoPath(repo)}/actions/runs/${encodeURIComponent(workflowRunId)}/artifacts?per_page=${PER_PAGE}`;
      for (let page = 0; url; page++) {
        if (page === MAX_PAGES) throw new GithubApiError(`GitHub ${what}: more than ${MAX_PAGES} pages`, null, false);
        const response = await call(installationId, what, url, { method: "GET" });
        if (!response.ok) throw await responseError(what, response, now());
        const body = (await response.json()) as { artifacts?: ArtifactJson[] };
        for (const artifact of body.artifacts ?? []) {
          artifacts.push({
            id: String(artifact.id),
            name: artifact.name,
            sizeInBytes: artifact.size_in_bytes,
            expired: artifact.expired,
            digest: artifact.digest ?? null,
          });
        }
        url = nextLink(response.headers.get("link"));
        // The token goes with every page: a next link off GitHub's API would hand it to someone else.
        if (url && !sameOrigin(url, apiUrl)) {
          throw new GithubApiError(`GitHub ${what}: next page link leaves the API`, null, false);
        }
      }
      return artifacts;
    },

    async downloadArtifact(installationId, repo, artifactId, maxBytes) {
      const what = "download artifact";
      const url = `${repoPath(repo)}/actions/artifacts/${encodeURIComponent(artifactId)}/zip`;
      // GitHub answers with a redirect to short-lived signed blob storage, which must not get our token:
      // the redirect is taken by hand, and the blob fetched without Authorization.
      const response = await call(installationId, what, url, { method: "GET", redirect: "manual" });
      if (response.status === 410) {
        await response.body?.cancel();
        throw new GithubApiError(`GitHub ${what}: 410 expired`, 410, false, null, "artifact_expired");
      }
      if (response.ok) return readLimited(response, maxBytes, what);
      const location = response.headers.get("location");
      if (response.status < 300 || response.status >= 400 || !location)
        throw await responseError(what, response, now());
      await response.body?.cancel();
      const blob = await send(what, new URL(location, url).toString(), {
        method: "GET",
        headers: { "user-agent": USER_AGENT },
      });
      if (!blob.ok) {
        const error = await responseError(`${what} (storage)`, blob, now());
        // The signed URL lives about a minute; refused, it is stale, and a new redirect brings a fresh one.
        if (blob.status === 403 && !error.retryable) throw new GithubApiError(error.message, 403, true);
        throw error;
      }
      return readLimited(blob, maxBytes, what);
    },

    async createCheckRun(installationId, repo, input) {
      const what = "create check run";
      const response = await call(installationId, what, `${repoPath(repo)}/check-runs`, {
        method: "POST",
        body: checkRunBody(input, now(), true),
      });
      if (!response.ok) throw await responseError(what, response, now());
      const body = (await response.json()) as { id: number };
      return { id: String(body.id) };
    },

    async updateCheckRun(installationId, repo, checkRunId, input) {
      const what = "update check run";
      const response = await call(
        installationId,
        what,
        `${repoPath(repo)}/check-runs/${encodeURIComponent(checkRunId)}`,
        { method: "PATCH", body: checkRunBody(input, now(), false) },
      );
      if (!response.ok) throw await responseError(what, response, now());
      await response.body?.cancel();
    },
  };
}
