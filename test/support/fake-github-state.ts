import { createHash, randomBytes, randomInt } from "node:crypto";
import { zipSync } from "fflate";
import type {
  FakeArtifactCreated,
  FakeArtifactInput,
  FakeCheckRun,
  FakeFailureInput,
  FakeInstallationInput,
  FakeRequestLogEntry,
  FakeWorkflowRunInput,
} from "./fake-github-api.ts";

/**
 * What the fake GitHub remembers. Everything is keyed by installation, repository or a generated id, so the
 * worker test files that share one fake never need a reset. Repository names compare case-insensitively,
 * as on GitHub.
 */
export interface Installation {
  id: string;
  repositories: Set<string>;
  suspended: boolean;
  tokenLifetimeSeconds: number;
  tokensIssued: number;
}

export interface InstallationToken {
  installationId: string;
  expiresAtMs: number;
  revoked: boolean;
}

export interface Artifact {
  id: string;
  repo: string;
  runId: string;
  name: string;
  bytes: Uint8Array;
  digest: string;
  expired: boolean;
  chunked: boolean;
  createdAt: Date;
}

export interface WorkflowRun {
  id: string;
  headSha: string;
  headBranch: string;
  artifactIds: string[];
}

export interface Failure extends FakeFailureInput {
  remaining: number;
}

const LOG_LIMIT = 20_000;
const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function repoKey(owner: string, name: string): string {
  return `${owner}/${name}`.toLowerCase();
}

/** GitHub's installation tokens: "ghs_" and 36 alphanumerics. */
function installationTokenText(): string {
  let text = "ghs_";
  for (let i = 0; i < 36; i++) text += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return text;
}

export class FakeGithubState {
  readonly installations = new Map<string, Installation>();
  readonly tokens = new Map<string, InstallationToken>();
  /** repo key → run id → run */
  readonly runs = new Map<string, Map<string, WorkflowRun>>();
  readonly artifacts = new Map<string, Artifact>();
  /** One-time blob URLs: token → artifact id and when the URL stops working (GitHub's last a minute). */
  readonly blobs = new Map<string, { artifactId: string; expiresAtMs: number }>();
  readonly checkRuns = new Map<
    string,
    FakeCheckRun & { repo: string; startedAt: string; completedAt: string | null }
  >();
  readonly failures: Failure[] = [];
  readonly log: FakeRequestLogEntry[] = [];
  // Ids past 2^32 like GitHub's, so a client that squeezes them into 32 bits fails here first.
  private nextId = 9_000_000_000 + randomInt(1_000_000);

  newId(): string {
    this.nextId += 1;
    return String(this.nextId);
  }

  putInstallation(id: string, input: FakeInstallationInput): Installation {
    const installation: Installation = {
      id,
      repositories: new Set(input.repositories.map((repo) => repo.toLowerCase())),
      suspended: input.suspended ?? false,
      tokenLifetimeSeconds: input.tokenLifetimeSeconds ?? 3600,
      tokensIssued: this.installations.get(id)?.tokensIssued ?? 0,
    };
    this.installations.set(id, installation);
    return installation;
  }

  issueToken(installation: Installation, nowMs: number): { token: string; expiresAt: Date } {
    const token = installationTokenText();
    const expiresAt = new Date(nowMs + installation.tokenLifetimeSeconds * 1000);
    this.tokens.set(token, { installationId: installation.id, expiresAtMs: expiresAt.getTime(), revoked: false });
    installation.tokensIssued += 1;
    return { token, expiresAt };
  }

  revokeTokens(installationId: string): void {
    for (const token of this.tokens.values()) if (token.installationId === installationId) token.revoked = true;
  }

  putRun(repo: string, runId: string, input: FakeWorkflowRunInput): FakeArtifactCreated[] {
    const run: WorkflowRun = {
      id: runId,
      headSha: input.headSha ?? randomBytes(20).toString("hex"),
      headBranch: input.headBranch ?? "main",
      artifactIds: [],
    };
    const created = input.artifacts.map((spec) => this.addArtifact(repo, runId, spec));
    run.artifactIds = created.map((artifact) => artifact.id);
    const repoRuns = this.runs.get(repo) ?? new Map<string, WorkflowRun>();
    repoRuns.set(runId, run);
    this.runs.set(repo, repoRuns);
    return created;
  }

  private addArtifact(repo: string, runId: string, spec: FakeArtifactInput): FakeArtifactCreated {
    const bytes = spec.zipBase64
      ? new Uint8Array(Buffer.from(spec.zipBase64, "base64"))
      : zipSync(Object.fromEntries(Object.entries(spec.files ?? {}).map(([path, text]) => [path, Buffer.from(text)])));
    const artifact: Artifact = {
      id: this.newId(),
      repo,
      runId,
      name: spec.name,
      bytes,
      digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
      expired: spec.expired ?? false,
      chunked: spec.chunked ?? false,
      createdAt: new Date(),
    };
    this.artifacts.set(artifact.id, artifact);
    return { id: artifact.id, name: artifact.name, sizeInBytes: bytes.byteLength, digest: artifact.digest };
  }

  addFailure(input: FakeFailureInput): void {
    this.failures.push({ ...input, remaining: input.times ?? 1 });
  }

  /** The injected failure the request meets, used up by one. */
  takeFailure(method: string, path: string): Failure | null {
    const index = this.failures.findIndex(
      (failure) =>
        (!failure.method || failure.method.toUpperCase() === method) &&
        (failure.match === "prefix" ? path.startsWith(failure.path) : path === failure.path),
    );
    if (index < 0) return null;
    const failure = this.failures[index]!;
    failure.remaining -= 1;
    if (failure.remaining <= 0) this.failures.splice(index, 1);
    return failure;
  }

  record(entry: FakeRequestLogEntry): void {
    this.log.push(entry);
    if (this.log.length > LOG_LIMIT) this.log.splice(0, this.log.length - LOG_LIMIT);
  }
}
