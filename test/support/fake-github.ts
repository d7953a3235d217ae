import { createPublicKey, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  FakeAuthKind,
  FakeFailureInput,
  FakeInstallationInput,
  FakeInstallationState,
  FakeWorkflowRunInput,
} from "./fake-github-api.ts";
import { validateCheckRun } from "./fake-github-check-runs.ts";
import { appJwtRefusal } from "./fake-github-jwt.ts";
import { type Artifact, FakeGithubState, type Installation, repoKey } from "./fake-github-state.ts";

/**
 * A local stand-in for the few GitHub REST endpoints the App calls (installation tokens, workflow run
 * artifacts, artifact zips, check runs), checking the App's JWT and installation tokens as GitHub does, plus
 * `/_fake/` control endpoints the worker tests drive (test/worker/github-fake.ts, types in
 * fake-github-api.ts). Started once per run by test/global-setup.ts; test files share it, so its state is
 * keyed by installation and repository.
 *
 * Artifact zips are served by a second server, a different origin like GitHub's blob storage, through
 * one-time URLs: a request there carrying an Authorization header is recorded as a violation (the
 * installation token must never leave api.github.com) and refused, as Azure refuses a SAS URL with one.
 */
export interface FakeGithubOptions {
  appId: string;
  /** The App's public key (PEM): the fake verifies JWTs with it as GitHub does with the registered key. */
  publicKey: string;
}

export interface RunningFakeGithub {
  url: string;
  close(): Promise<void>;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Raw bytes, streamed without Content-Length when `chunked`. */
  bytes?: Uint8Array;
  chunked?: boolean;
  /** Drop the connection without an answer. */
  network?: boolean;
}

/** Who a request is, for its log entry. */
interface Caller {
  auth: FakeAuthKind;
  installationId: string | null;
  repo: string | null;
}

type Handler = (request: Parsed, caller: Caller) => Reply | Promise<Reply>;

interface Parsed {
  method: string;
  url: URL;
  params: string[];
  headers: IncomingMessage["headers"];
  body: () => Promise<unknown>;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const BLOB_URL_LIFETIME_MS = 60_000;
const DOCS = "https://docs.github.com/rest";

function error(status: number, message: string, headers?: Record<string, string>): Reply {
  return { status, headers, body: { message, documentation_url: DOCS, status: String(status) } };
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_BODY_BYTES) throw new Error("request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function credential(headers: IncomingMessage["headers"]): string | null {
  const match = /^(?:bearer|token)\s+(\S+)$/i.exec(headers.authorization ?? "");
  return match ? match[1]! : null;
}

function isJwt(text: string): boolean {
  return text.split(".").length === 3;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve, reject) => server.close((failure) => (failure ? reject(failure) : resolve())));
}

async function send(response: ServerResponse, reply: Reply): Promise<void> {
  if (reply.network) {
    response.socket?.destroy();
    return;
  }
  const headers: Record<string, string> = { ...reply.headers };
  if (reply.bytes) {
    headers["content-type"] ??= "application/zip";
    if (!reply.chunked) headers["content-length"] = String(reply.bytes.byteLength);
    response.writeHead(reply.status, headers);
    // Pieces, so a client reading a chunked answer sees it arrive over time as from blob storage.
    for (let offset = 0; offset < reply.bytes.byteLength; offset += 64 * 1024) {
      const piece = reply.bytes.subarray(offset, offset + 64 * 1024);
      if (!response.write(piece)) await new Promise((resolve) => response.once("drain", resolve));
      if (response.destroyed) return;
    }
    response.end();
    return;
  }
  const text = reply.body === undefined ? "" : JSON.stringify(reply.body);
  if (text) headers["content-type"] ??= "application/json; charset=utf-8";
  response.writeHead(reply.status, headers);
  response.end(text);
}

export async function startFakeGithub(options: FakeGithubOptions): Promise<RunningFakeGithub> {
  const state = new FakeGithubState();
  const publicKey = createPublicKey(options.publicKey);
  const apiServer = createServer();
  const blobServer = createServer();
  const apiUrl = await listen(apiServer);
  const blobUrl = await listen(blobServer);

  /** The installation a token belongs to, or the answer GitHub gives instead. */
  function installationOf(headers: IncomingMessage["headers"], caller: Caller): Installation | Reply {
    const presented = credential(headers);
    if (!presented) return error(401, "Requires authentication");
    if (isJwt(presented)) {
      caller.auth = "jwt";
      return error(401, "Bad credentials");
    }
    const token = state.tokens.get(presented);
    const installation = token && state.installations.get(token.installationId);
    if (!token || !installation || token.revoked || token.expiresAtMs <= Date.now()) {
      caller.auth = "invalid";
      return error(401, "Bad credentials");
    }
    caller.auth = "installation-token";
    caller.installationId = installation.id;
    if (installation.suspended) return error(403, "This installation has been suspended");
    return installation;
  }

  /** The installation, when its token covers the repository; GitHub hides other repositories behind 404. */
  function repoAccess(request: Parsed, caller: Caller): { installation: Installation; repo: string } | Reply {
    const [owner, name] = request.params as [string, string];
    const repo = repoKey(owner, name);
    caller.repo = repo;
    const installation = installationOf(request.headers, caller);
    if ("status" in installation) return installation;
    if (!installation.repositories.has(repo)) return error(404, "Not Found");
    return { installation, repo };
  }

  function artifactJson(artifact: Artifact, owner: string, name: string) {
    const run = state.runs.get(artifact.repo)?.get(artifact.runId);
    const base = `${apiUrl}/repos/${owner}/${name}/actions/artifacts/${artifact.id}`;
    const expiresAt = new Date(artifact.createdAt.getTime() + 90 * 86_400_000);
    return {
      id: Number(artifact.id),
      node_id: `MDg6QXJ0aWZhY3Q${artifact.id}`,
      name: artifact.name,
      size_in_bytes: artifact.bytes.byteLength,
      url: base,
      archive_download_url: `${base}/zip`,
      expired: artifact.expired,
      digest: artifact.digest,
      created_at: artifact.createdAt.toISOString(),
      updated_at: artifact.createdAt.toISOString(),
      expires_at: expiresAt.toISOString(),
      workflow_run: {
        id: Number(artifact.runId),
        repository_id: 1,
        head_repository_id: 1,
        head_branch: run?.headBranch ?? "main",
        head_sha: run?.headSha ?? "",
      },
    };
  }

  const api: [string, RegExp, Handler][] = [
    [
      "POST",
      /^\/app\/installations\/(\d+)\/access_tokens$/,
      (request, caller) => {
        const presented = credential(request.headers);
        if (!presented) return error(401, "A JSON web token could not be decoded");
        caller.auth = "invalid";
        const refusal = appJwtRefusal(presented, options.appId, publicKey, Math.floor(Date.now() / 1000));
        if (refusal) return error(401, refusal);
        caller.auth = "jwt";
        const installationId = request.params[0]!;
        caller.installationId = installationId;
        const installation = state.installations.get(installationId);
        if (!installation) return error(404, "Not Found");
        if (installation.suspended) return error(403, "This installation has been suspended");
        const { token, expiresAt } = state.issueToken(installation, Date.now());
        return {
          status: 201,
          body: {
            token,
            expires_at: expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
            permissions: { actions: "read", checks: "write", metadata: "read" },
            repository_selection: "selected",
          },
        };
      },
    ],
    [
      "GET",
      /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs\/(\d+)\/artifacts$/,
      (request, caller) => {
        const access = repoAccess(request, caller);
        if ("status" in access) return access;
        const [owner, name, runId] = request.params as [string, string, string];
        const run = state.runs.get(access.repo)?.get(runId);
        if (!run) return error(404, "Not Found");
        const perPage = Math.min(100, Math.max(1, Number(request.url.searchParams.get("per_page") ?? 30) || 30));
        const page = Math.max(1, Number(request.url.searchParams.get("page") ?? 1) || 1);
        const all = run.artifactIds.map((id) => state.artifacts.get(id)!);
        const lastPage = Math.max(1, Math.ceil(all.length / perPage));
        const pageUrl = (n: number) => `${apiUrl}${request.url.pathname}?per_page=${perPage}&page=${n}`;
        const links: string[] = [];
        if (page < lastPage) links.push(`<${pageUrl(page + 1)}>; rel="next"`, `<${pageUrl(lastPage)}>; rel="last"`);
        if (page > 1) links.push(`<${pageUrl(page - 1)}>; rel="prev"`, `<${pageUrl(1)}>; rel="first"`);
        return {
          status: 200,
          headers: links.length ? { link: links.join(", ") } : {},
          body: {
            total_count: all.length,
            artifacts: all.slice((page - 1) * perPage, page * perPage).map((a) => artifactJson(a, owner, name)),
          },
        };
      },
    ],
    [
      "GET",
      /^\/repos\/([^/]+)\/([^/]+)\/actions\/artifacts\/(\d+)\/zip$/,
      (request, caller) => {
        const access = repoAccess(request, caller);
        if ("status" in access) return access;
        const artifact = state.artifacts.get(request.params[2]!);
        if (!artifact || artifact.repo !== access.repo) return error(404, "Not Found");
        if (artifact.expired) return error(410, "Artifact has expired");
        const blobToken = randomBytes(24).toString("hex");
        state.blobs.set(blobToken, { artifactId: artifact.id, expiresAtMs: Date.now() + BLOB_URL_LIFETIME_MS });
        return { status: 302, headers: { location: `${blobUrl}/_blob/${blobToken}?sv=2025-01-05&sig=fake` } };
      },
    ],
    [
      "POST",
      /^\/repos\/([^/]+)\/([^/]+)\/check-runs$/,
      async (request, caller) => {
        const access = repoAccess(request, caller);
        if ("status" in access) return access;
        const body = await request.body();
        const invalid = validateCheckRun(body, true);
        if (invalid) return { status: 422, body: { message: "Validation Failed", errors: invalid } };
        const input = body as Record<string, unknown>;
        const id = state.newId();
        const now = new Date().toISOString();
        const output = input.output as { title: string; summary: string; text?: string } | undefined;
        const record = {
          id,
          repo: access.repo,
          installationId: access.installation.id,
          name: input.name as string,
          headSha: input.head_sha as string,
          status: (input.status as string | undefined) ?? "queued",
          conclusion: (input.conclusion as string | undefined) ?? null,
          externalId: (input.external_id as string | undefined) ?? null,
          output: output ? { title: output.title, summary: output.summary, text: output.text ?? null } : null,
          updates: 0,
          startedAt: now,
          completedAt: input.status === "completed" ? now : null,
        };
        state.checkRuns.set(id, record);
        return { status: 201, body: checkRunJson(record, request.params[0]!, request.params[1]!) };
      },
    ],
    [
      "PATCH",
      /^\/repos\/([^/]+)\/([^/]+)\/check-runs\/(\d+)$/,
      async (request, caller) => {
        const access = repoAccess(request, caller);
        if ("status" in access) return access;
        const record = state.checkRuns.get(request.params[2]!);
        if (!record || record.repo !== access.repo) return error(404, "Not Found");
        const body = await request.body();
        const invalid = validateCheckRun(body, false);
        if (invalid) return { status: 422, body: { message: "Validation Failed", errors: invalid } };
        const input = body as Record<string, unknown>;
        if (typeof input.name === "string") record.name = input.name;
        if (typeof input.status === "string") record.status = input.status;
        if (typeof input.conclusion === "string") {
          record.conclusion = input.conclusion;
          record.status = "completed";
        }
        if (typeof input.external_id === "string") record.externalId = input.external_id;
        const output = input.output as { title: string; summary: string; text?: string } | undefined;
        if (output) record.output = { title: output.title, summary: output.summary, text: output.text ?? null };
        if (record.status === "completed") record.completedAt ??= new Date().toISOString();
        record.updates += 1;
        return { status: 200, body: checkRunJson(record, request.params[0]!, request.params[1]!) };
      },
    ],
  ];

  function checkRunJson(record: NonNullable<ReturnType<typeof state.checkRuns.get>>, owner: string, name: string) {
    return {
      id: Number(record.id),
      node_id: `CR_${record.id}`,
      head_sha: record.headSha,
      external_id: record.externalId ?? "",
      url: `${apiUrl}/repos/${owner}/${name}/check-runs/${record.id}`,
      html_url: `https://github.com/${owner}/${name}/runs/${record.id}`,
      details_url: null,
      status: record.status,
      conclusion: record.conclusion,
      started_at: record.startedAt,
      completed_at: record.completedAt,
      output: {
        title: record.output?.title ?? null,
        summary: record.output?.summary ?? null,
        text: record.output?.text ?? null,
        annotations_count: 0,
        annotations_url: `${apiUrl}/repos/${owner}/${name}/check-runs/${record.id}/annotations`,
      },
      name: record.name,
      check_suite: { id: Number(record.id) + 1 },
      app: { id: Number(options.appId), slug: "anchorpipe" },
      pull_requests: [],
    };
  }

  const control: [string, RegExp, Handler][] = [
    [
      "PUT",
      /^\/_fake\/installations\/(\d+)$/,
      async (request) => {
        const installation = state.putInstallation(request.params[0]!, (await request.body()) as FakeInstallationInput);
        return { status: 200, body: installationState(installation) };
      },
    ],
    [
      "GET",
      /^\/_fake\/installations\/(\d+)$/,
      (request) => {
        const installation = state.installations.get(request.params[0]!);
        return installation ? { status: 200, body: installationState(installation) } : error(404, "Not Found");
      },
    ],
    [
      "DELETE",
      /^\/_fake\/installations\/(\d+)\/tokens$/,
      (request) => {
        state.revokeTokens(request.params[0]!);
        return { status: 204 };
      },
    ],
    [
      "PUT",
      /^\/_fake\/repos\/([^/]+)\/([^/]+)\/runs\/(\d+)\/artifacts$/,
      async (request) => {
        const [owner, name, runId] = request.params as [string, string, string];
        const created = state.putRun(repoKey(owner, name), runId, (await request.body()) as FakeWorkflowRunInput);
        const run = state.runs.get(repoKey(owner, name))!.get(runId)!;
        return { status: 200, body: { headSha: run.headSha, artifacts: created } };
      },
    ],
    [
      "GET",
      /^\/_fake\/repos\/([^/]+)\/([^/]+)\/check-runs$/,
      (request) => {
        const repo = repoKey(request.params[0]!, request.params[1]!);
        const headSha = request.url.searchParams.get("head_sha");
        const runs = [...state.checkRuns.values()]
          .filter((run) => run.repo === repo && (!headSha || run.headSha === headSha))
          .map(({ repo: _repo, startedAt: _startedAt, completedAt: _completedAt, ...run }) => run);
        return { status: 200, body: runs };
      },
    ],
    [
      "POST",
      /^\/_fake\/failures$/,
      async (request) => {
        state.addFailure((await request.body()) as FakeFailureInput);
        return { status: 204 };
      },
    ],
    [
      "GET",
      /^\/_fake\/(log|violations)$/,
      (request) => {
        const repo = request.url.searchParams.get("repo")?.toLowerCase();
        const installationId = request.url.searchParams.get("installation");
        const entries = state.log.filter(
          (entry) =>
            (!repo || entry.repo === repo) &&
            (!installationId || entry.installationId === installationId) &&
            (request.params[0] === "log" || (entry.blob && entry.hadAuthorization)),
        );
        return { status: 200, body: entries };
      },
    ],
  ];

  function installationState(installation: Installation): FakeInstallationState {
    return {
      installationId: installation.id,
      repositories: [...installation.repositories],
      suspended: installation.suspended,
      tokensIssued: installation.tokensIssued,
    };
  }

  async function blob(request: Parsed, caller: Caller): Promise<Reply> {
    const grant = state.blobs.get(request.params[0]!);
    const artifact = grant && state.artifacts.get(grant.artifactId);
    if (artifact) caller.repo = artifact.repo;
    if (request.headers.authorization !== undefined) {
      return error(400, "InvalidAuthenticationInfo: Authentication information is not given in the correct format.");
    }
    if (!grant || !artifact || grant.expiresAtMs <= Date.now()) {
      return error(403, "AuthenticationFailed: Server failed to authenticate the request.");
    }
    // One-time, so a client that fetches the Location twice (or leaks it) is caught.
    state.blobs.delete(request.params[0]!);
    return { status: 200, bytes: artifact.bytes, chunked: artifact.chunked };
  }

  async function handle(
    routes: [string, RegExp, Handler][],
    isBlob: boolean,
    incoming: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    const url = new URL(incoming.url ?? "/", "http://fake");
    const method = (incoming.method ?? "GET").toUpperCase();
    const isControl = url.pathname.startsWith("/_fake/");
    const caller: Caller = { auth: "none", installationId: null, repo: null };
    let reply: Reply;
    try {
      const failure = isControl ? null : state.takeFailure(method, url.pathname);
      const route = routes.find(([routeMethod, pattern]) => routeMethod === method && pattern.test(url.pathname));
      const request: Parsed = {
        method,
        url,
        params: route ? (route[1].exec(url.pathname)?.slice(1) ?? []) : [],
        headers: incoming.headers,
        body: async () => {
          const bytes = await readBody(incoming);
          return bytes.byteLength ? JSON.parse(bytes.toString("utf8")) : {};
        },
      };
      if (failure) {
        reply = failure.network
          ? { status: 0, network: true }
          : {
              status: failure.status ?? 500,
              headers: failure.headers,
              body: failure.body ?? { message: "Server Error" },
            };
      } else if (!isBlob && !isControl && !incoming.headers["user-agent"]) {
        // GitHub refuses API requests without a User-Agent.
        reply = error(
          403,
          "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        );
      } else if (route) {
        reply = await route[2](request, caller);
      } else {
        reply = error(404, "Not Found");
      }
    } catch (failure) {
      reply = error(400, `Problems parsing JSON: ${(failure as Error).message}`);
    }
    if (!isControl) {
      state.record({
        method,
        path: `${url.pathname}${url.search}`,
        status: reply.status,
        auth: caller.auth,
        hadAuthorization: incoming.headers.authorization !== undefined,
        installationId: caller.installationId,
        repo: caller.repo,
        blob: isBlob,
      });
    }
    await send(response, reply);
  }

  apiServer.on("request", (incoming, response) => {
    void handle([...api, ...control], false, incoming, response);
  });
  blobServer.on("request", (incoming, response) => {
    void handle([["GET", /^\/_blob\/([0-9a-f]+)$/, blob]], true, incoming, response);
  });

  return {
    url: apiUrl,
    close: async () => {
      await close(blobServer);
      await close(apiServer);
    },
  };
}
