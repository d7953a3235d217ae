/**
 * The GitHub REST calls the App makes, authenticated as the App (a JWT signed with its private key) exchanged
 * for installation tokens. (Interface agreed first; the implementation is being written.)
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

/** A GitHub call that failed: `retryable` for 5xx, 429, secondary rate limits and network errors. */
export class GithubApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = "GithubApiError";
  }
}

export function createGithubClient(
  _credentials: GithubAppCredentials,
  _options: { fetch?: typeof fetch; now?: () => Date } = {},
): GithubClient {
  throw new Error("not implemented yet");
}
