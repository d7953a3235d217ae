/**
 * The fake GitHub's control endpoints (`/_fake/…`, test/support/fake-github.ts), as the worker tests call
 * them (test/worker/github-fake.ts). Types only: the fake runs in Node, the tests in workerd.
 */

/** PUT /_fake/installations/:installation_id */
export interface FakeInstallationInput {
  /** "owner/name" of every repository the installation covers. */
  repositories: string[];
  /** A suspended installation gets no tokens (403), as on GitHub. */
  suspended?: boolean;
  /** How long its tokens live; GitHub's are one hour. */
  tokenLifetimeSeconds?: number;
}

/** GET /_fake/installations/:installation_id */
export interface FakeInstallationState {
  installationId: string;
  repositories: string[];
  suspended: boolean;
  /** POST /app/installations/:id/access_tokens calls that returned a token. */
  tokensIssued: number;
}

/** One artifact of PUT /_fake/repos/:owner/:repo/runs/:run_id/artifacts. */
export interface FakeArtifactInput {
  name: string;
  /** Zipped by the fake (fflate zipSync): path in the zip → content. */
  files?: Record<string, string>;
  /** Raw bytes instead of `files` (base64), e.g. a broken zip. */
  zipBase64?: string;
  /** Listed with expired: true; its download answers 410. */
  expired?: boolean;
  /** Serve the zip without Content-Length (chunked), so a size limit must hold while streaming. */
  chunked?: boolean;
}

export interface FakeWorkflowRunInput {
  /** The run's head commit; a random one when absent. */
  headSha?: string;
  headBranch?: string;
  artifacts: FakeArtifactInput[];
}

export interface FakeArtifactCreated {
  id: string;
  name: string;
  sizeInBytes: number;
  /** "sha256:<hex>" of the zip. */
  digest: string;
}

/**
 * POST /_fake/failures: the next `times` requests (default 1) whose method and path match answer with
 * `status`/`body`/`headers` instead, or drop the connection (`network`). Paths name an installation or a
 * repository, so concurrent test files do not trip over each other's failures.
 */
export interface FakeFailureInput {
  method?: string;
  /** The request's pathname, without the query string. */
  path: string;
  /** "prefix": every path starting with `path`. Default "exact". */
  match?: "exact" | "prefix";
  times?: number;
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  network?: boolean;
}

/** GET /_fake/repos/:owner/:repo/check-runs[?head_sha=] */
export interface FakeCheckRun {
  id: string;
  name: string;
  headSha: string;
  status: string;
  conclusion: string | null;
  externalId: string | null;
  output: { title: string; summary: string; text: string | null } | null;
  /** PATCH calls applied after the creation. */
  updates: number;
  installationId: string;
}

export type FakeAuthKind = "none" | "jwt" | "installation-token" | "invalid";

/** GET /_fake/log?repo=owner/name or ?installation=id: requests to the API and the blob store, oldest first. */
export interface FakeRequestLogEntry {
  method: string;
  /** Path and query string. */
  path: string;
  status: number;
  auth: FakeAuthKind;
  /** Whether an Authorization header came at all (the blob store must never get one). */
  hadAuthorization: boolean;
  installationId: string | null;
  repo: string | null;
  blob: boolean;
}
