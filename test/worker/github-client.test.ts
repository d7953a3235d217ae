import { env } from "cloudflare:workers";
import { unzipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { toPkcs8Pem } from "../../src/services/github/app-auth";
import {
  type CheckRunInput,
  createGithubClient,
  GithubApiError,
  type GithubAppCredentials,
} from "../../src/services/github/client";
import {
  fakeBlobViolations,
  fakeCheckRuns,
  fakeInstallation,
  fakeRequestLog,
  githubPaths,
  injectFakeFailure,
  injectSecondaryRateLimit,
  putFakeInstallation,
  putFakeRunArtifacts,
  revokeFakeTokens,
  uniqueGithubRepo,
  uniqueInstallationId,
} from "./github-fake";

const credentials: GithubAppCredentials = {
  apiUrl: env.GITHUB_API_URL!,
  appId: env.GITHUB_APP_ID!,
  privateKey: env.GITHUB_APP_PRIVATE_KEY!,
};

/** A clock the test moves by hand; it starts `offsetMs` from the machine's. */
function testClock(offsetMs = 0) {
  let current = Date.now() + offsetMs;
  return {
    now: () => new Date(current),
    advance: (ms: number) => {
      current += ms;
    },
  };
}

/** An installation covering a fresh repository, with one workflow run. */
async function setUp(
  artifacts: Parameters<typeof putFakeRunArtifacts>[2]["artifacts"] = [{ name: "junit", files: { "a.xml": "<a/>" } }],
  installation: { tokenLifetimeSeconds?: number } = {},
) {
  const installationId = uniqueInstallationId();
  const repo = uniqueGithubRepo();
  await putFakeInstallation(installationId, { repositories: [repo.fullName], ...installation });
  const runId = String(20_000_000_000 + Math.floor(Math.random() * 1_000_000_000));
  const run = await putFakeRunArtifacts(repo, runId, { artifacts });
  return { installationId, repo, runId, ...run };
}

async function failure(promise: Promise<unknown>): Promise<GithubApiError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(GithubApiError);
  const githubError = error as GithubApiError;
  // Whatever went wrong, the message never carries a token or a JWT.
  expect(githubError.message).not.toMatch(/ghs_|eyJ/);
  return githubError;
}

async function otherPrivateKey(): Promise<string> {
  const pair = (await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const der = new Uint8Array((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer);
  const base64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN PRIVATE KEY-----\n${base64.match(/.{1,64}/g)!.join("\n")}\n-----END PRIVATE KEY-----\n`;
}

const checkRun = (headSha: string, overrides: Partial<CheckRunInput> = {}): CheckRunInput => ({
  name: "anchorpipe",
  headSha,
  status: "completed",
  conclusion: "success",
  output: { title: "No failures", summary: "All 12 tests passed." },
  externalId: crypto.randomUUID(),
  ...overrides,
});

describe("App authentication", () => {
  it("signs a JWT with the PKCS#1 key GitHub hands out, which the fake accepts for an installation token", async () => {
    const { installationId, repo, runId, artifacts } = await setUp();
    const client = createGithubClient(credentials, { now: testClock().now });

    const listed = await client.listRunArtifacts(installationId, repo, runId);

    expect(listed.map((artifact) => artifact.id)).toEqual(artifacts.map((artifact) => artifact.id));
    const log = await fakeRequestLog({ installationId });
    expect(log.filter((entry) => entry.path.endsWith("/access_tokens"))).toEqual([
      expect.objectContaining({ method: "POST", status: 201, auth: "jwt" }),
    ]);
    expect(log.filter((entry) => entry.repo === repo.fullName.toLowerCase())).toEqual([
      expect.objectContaining({ status: 200, auth: "installation-token" }),
    ]);
  });

  it("accepts the key as PKCS#8 or with its line breaks escaped, as an environment variable may hold it", async () => {
    const { installationId, repo, runId } = await setUp();
    for (const privateKey of [toPkcs8Pem(credentials.privateKey), credentials.privateKey.replace(/\n/g, "\\n")]) {
      const client = createGithubClient({ ...credentials, privateKey }, { now: testClock().now });
      await expect(client.listRunArtifacts(installationId, repo, runId)).resolves.toHaveLength(1);
    }
  });

  it("is refused with another key or another App id: 401, not retryable", async () => {
    const { installationId, repo, runId } = await setUp();
    const wrongKey = createGithubClient({ ...credentials, privateKey: await otherPrivateKey() });
    const wrongApp = createGithubClient({ ...credentials, appId: "424243" });

    for (const client of [wrongKey, wrongApp]) {
      const error = await failure(client.listRunArtifacts(installationId, repo, runId));
      expect(error).toMatchObject({ status: 401, retryable: false });
    }
    expect((await fakeInstallation(installationId)).tokensIssued).toBe(0);
  });

  it("is refused by an unknown installation (404) and a suspended one (403), neither retryable", async () => {
    const { installationId, repo, runId } = await setUp();
    const client = createGithubClient(credentials);

    const unknown = await failure(client.listRunArtifacts(uniqueInstallationId(), repo, runId));
    expect(unknown).toMatchObject({ status: 404, retryable: false });

    await putFakeInstallation(installationId, { repositories: [repo.fullName], suspended: true });
    const suspended = await failure(client.listRunArtifacts(installationId, repo, runId));
    expect(suspended).toMatchObject({ status: 403, retryable: false });
  });

  it("reuses an installation token until five minutes before it expires", async () => {
    // The fake dates tokens and checks JWTs by the real time (T0 = now, before set-up), and a JWT is dated a
    // minute before the client's clock, so that clock may run at most a minute ahead of the real one. A 305 s
    // token is due for renewal 5 s after it was issued (at T1 ≥ T0). The clock starts a minute back: at T0 the
    // token is still fresh, at T0 + 59 s it is due however long set-up took (up to 54 s).
    const clock = testClock(-60_000);
    const { installationId, repo, runId } = await setUp(undefined, { tokenLifetimeSeconds: 305 });
    const client = createGithubClient(credentials, { now: clock.now });

    await client.listRunArtifacts(installationId, repo, runId);
    await client.listRunArtifacts(installationId, repo, runId);
    clock.advance(60_000);
    await client.listRunArtifacts(installationId, repo, runId);
    expect((await fakeInstallation(installationId)).tokensIssued).toBe(1);

    clock.advance(59_000);
    await client.listRunArtifacts(installationId, repo, runId);
    expect((await fakeInstallation(installationId)).tokensIssued).toBe(2);
  });

  it("shares the token between clients of the same App in the isolate", async () => {
    const { installationId, repo, runId } = await setUp();
    await createGithubClient(credentials).listRunArtifacts(installationId, repo, runId);
    await createGithubClient(credentials).listRunArtifacts(installationId, repo, runId);
    expect((await fakeInstallation(installationId)).tokensIssued).toBe(1);
  });

  it("drops a token GitHub refuses (401) and repeats the call once with a fresh one", async () => {
    const { installationId, repo, runId } = await setUp();
    const client = createGithubClient(credentials, { now: testClock().now });
    await client.listRunArtifacts(installationId, repo, runId);

    await revokeFakeTokens(installationId);
    await expect(client.listRunArtifacts(installationId, repo, runId)).resolves.toHaveLength(1);

    expect((await fakeInstallation(installationId)).tokensIssued).toBe(2);
    const listings = (await fakeRequestLog({ repo: repo.fullName })).map((entry) => entry.status);
    expect(listings).toEqual([200, 401, 200]);
  });

  it("gives up after one fresh token is refused too", async () => {
    const { installationId, repo, runId } = await setUp();
    const client = createGithubClient(credentials, { now: testClock().now });
    await injectFakeFailure({ path: githubPaths.runArtifacts(repo, runId), times: 2, status: 401 });

    const error = await failure(client.listRunArtifacts(installationId, repo, runId));
    expect(error).toMatchObject({ status: 401, retryable: false });
    expect((await fakeInstallation(installationId)).tokensIssued).toBe(2);
  });
});

describe("artifacts", () => {
  it("lists every page by following the Link header", async () => {
    const names = Array.from({ length: 230 }, (_, i) => `report-${i}`);
    const { installationId, repo, runId, artifacts } = await setUp(names.map((name) => ({ name, files: {} })));
    const client = createGithubClient(credentials);

    const listed = await client.listRunArtifacts(installationId, repo, runId);

    expect(listed.map((artifact) => artifact.name)).toEqual(names);
    expect(listed[0]).toEqual({
      id: artifacts[0]!.id,
      name: "report-0",
      sizeInBytes: artifacts[0]!.sizeInBytes,
      expired: false,
      digest: artifacts[0]!.digest,
    });
    const pages = (await fakeRequestLog({ repo: repo.fullName })).map((entry) => new URL(entry.path, "http://x"));
    expect(pages.map((url) => url.searchParams.get("page") ?? "1")).toEqual(["1", "2", "3"]);
  });

  it("refuses a next page outside the API, which would receive the token", async () => {
    const { installationId, repo, runId } = await setUp();
    const client = createGithubClient(credentials, {
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        if (!String(input).includes("/artifacts?")) return response;
        const headers = new Headers(response.headers);
        headers.set("link", '<https://elsewhere.example/page2>; rel="next"');
        return new Response(response.body, { status: response.status, headers });
      },
    });
    const error = await failure(client.listRunArtifacts(installationId, repo, runId));
    expect(error.retryable).toBe(false);
  });

  it("downloads the zip by following GitHub's redirect without the Authorization header", async () => {
    const files = { "results/junit.xml": '<testsuite name="a"><testcase name="t"/></testsuite>' };
    const { installationId, repo, artifacts } = await setUp([{ name: "test-results", files }]);
    const client = createGithubClient(credentials);

    const zip = await client.downloadArtifact(installationId, repo, artifacts[0]!.id, 1024 * 1024);

    expect(new TextDecoder().decode(unzipSync(zip)["results/junit.xml"])).toBe(files["results/junit.xml"]);
    const log = await fakeRequestLog({ repo: repo.fullName });
    expect(log.map(({ status, auth, blob, hadAuthorization }) => ({ status, auth, blob, hadAuthorization }))).toEqual([
      { status: 302, auth: "installation-token", blob: false, hadAuthorization: true },
      { status: 200, auth: "none", blob: true, hadAuthorization: false },
    ]);
    expect(await fakeBlobViolations({ repo: repo.fullName })).toEqual([]);
  });

  it("(the fake notices a client that sends Authorization to blob storage)", async () => {
    const { installationId, repo, artifacts } = await setUp();
    const leaky = createGithubClient(credentials, {
      fetch: (input, init) =>
        fetch(input, { ...init, headers: { authorization: "Bearer leaked", ...(init?.headers as object) } }),
    });
    await failure(leaky.downloadArtifact(installationId, repo, artifacts[0]!.id, 1024 * 1024));
    expect(await fakeBlobViolations({ repo: repo.fullName })).toHaveLength(1);
  });

  it("refuses an artifact larger than maxBytes by its Content-Length and while streaming one without", async () => {
    // Random text compresses poorly, so the zips are a few hundred kilobytes.
    const big = Array.from({ length: 12_000 }, () => crypto.randomUUID()).join("\n");
    const { installationId, repo, artifacts } = await setUp([
      { name: "declared", files: { "big.txt": big } },
      { name: "chunked", files: { "big.txt": big }, chunked: true },
    ]);
    const client = createGithubClient(credentials);
    const limit = 100 * 1024;
    expect(artifacts[1]!.sizeInBytes).toBeGreaterThan(2 * limit);

    for (const artifact of artifacts) {
      const error = await failure(client.downloadArtifact(installationId, repo, artifact.id, limit));
      expect(error).toMatchObject({ retryable: false, code: "artifact_too_large" });
    }
    const chunked = await client.downloadArtifact(installationId, repo, artifacts[1]!.id, 10 * limit);
    expect(chunked.byteLength).toBe(artifacts[1]!.sizeInBytes);
  });

  it("reports an expired artifact (410) as final", async () => {
    const { installationId, repo, runId, artifacts } = await setUp([{ name: "old", files: {}, expired: true }]);
    const client = createGithubClient(credentials);

    const [listed] = await client.listRunArtifacts(installationId, repo, runId);
    expect(listed!.expired).toBe(true);
    const error = await failure(client.downloadArtifact(installationId, repo, artifacts[0]!.id, 1024));
    expect(error).toMatchObject({ status: 410, retryable: false, code: "artifact_expired" });
  });
});

describe("check runs", () => {
  it("creates a check run on the head commit and updates it", async () => {
    const { installationId, repo, headSha } = await setUp();
    const client = createGithubClient(credentials);

    const created = await client.createCheckRun(installationId, repo, checkRun(headSha));
    expect(created.id).toMatch(/^\d+$/);
    await client.updateCheckRun(
      installationId,
      repo,
      created.id,
      checkRun(headSha, {
        conclusion: "failure",
        output: { title: "2 failures", summary: "1 known flake", text: "…" },
      }),
    );

    expect(await fakeCheckRuns(repo, headSha)).toEqual([
      expect.objectContaining({
        id: created.id,
        name: "anchorpipe",
        headSha,
        status: "completed",
        conclusion: "failure",
        output: { title: "2 failures", summary: "1 known flake", text: "…" },
        updates: 1,
        installationId,
      }),
    ]);
  });

  it("passes on GitHub's refusal of an invalid check run (422) as final", async () => {
    const { installationId, repo, headSha } = await setUp();
    const client = createGithubClient(credentials);

    const tooLong = checkRun(headSha, { output: { title: "x", summary: "s".repeat(65_536) } });
    for (const input of [checkRun("not-a-sha"), tooLong]) {
      const error = await failure(client.createCheckRun(installationId, repo, input));
      expect(error).toMatchObject({ status: 422, retryable: false });
    }
    const missing = await failure(client.updateCheckRun(installationId, repo, "1", checkRun(headSha)));
    expect(missing).toMatchObject({ status: 404, retryable: false });
  });
});

describe("failures", () => {
  it("makes 5xx, 429 and network failures retryable", async () => {
    const { installationId, repo, runId } = await setUp();
    const client = createGithubClient(credentials);
    const path = githubPaths.runArtifacts(repo, runId);

    await injectFakeFailure({ path, status: 502 });
    expect(await failure(client.listRunArtifacts(installationId, repo, runId))).toMatchObject({
      status: 502,
      retryable: true,
    });
    await injectFakeFailure({ path, status: 429, headers: { "retry-after": "7" } });
    expect(await failure(client.listRunArtifacts(installationId, repo, runId))).toMatchObject({
      status: 429,
      retryable: true,
      retryAfterSeconds: 7,
    });
    await injectFakeFailure({ path, network: true });
    expect(await failure(client.listRunArtifacts(installationId, repo, runId))).toMatchObject({
      status: null,
      retryable: true,
    });
    await expect(client.listRunArtifacts(installationId, repo, runId)).resolves.toHaveLength(1);
  });

  it("makes a secondary rate limit retryable after its Retry-After", async () => {
    const { installationId, repo, headSha } = await setUp();
    const client = createGithubClient(credentials);
    await injectSecondaryRateLimit(githubPaths.checkRuns(repo), 42);

    const error = await failure(client.createCheckRun(installationId, repo, checkRun(headSha)));
    expect(error).toMatchObject({ status: 403, retryable: true, retryAfterSeconds: 42, code: "rate_limited" });
  });

  it("makes a primary rate limit retryable at its reset time", async () => {
    const { installationId, repo, runId } = await setUp();
    const clock = testClock();
    const client = createGithubClient(credentials, { now: clock.now });
    const reset = Math.floor(clock.now().getTime() / 1000) + 90;
    await injectFakeFailure({
      path: githubPaths.runArtifacts(repo, runId),
      status: 403,
      headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(reset) },
      body: { message: "API rate limit exceeded for installation ID 1." },
    });

    const error = await failure(client.listRunArtifacts(installationId, repo, runId));
    expect(error).toMatchObject({ retryable: true, code: "rate_limited" });
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(89);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(90);
  });

  it("makes a failed token exchange retryable only when GitHub is at fault", async () => {
    const { installationId, repo, runId } = await setUp();
    const client = createGithubClient(credentials);
    await injectFakeFailure({ path: githubPaths.accessTokens(installationId), status: 503 });

    expect(await failure(client.listRunArtifacts(installationId, repo, runId))).toMatchObject({
      status: 503,
      retryable: true,
    });
    await expect(client.listRunArtifacts(installationId, repo, runId)).resolves.toHaveLength(1);
  });

  it("makes 404 final: a run, artifact or repository the installation does not see", async () => {
    const { installationId, repo, runId } = await setUp();
    const other = uniqueGithubRepo();
    const client = createGithubClient(credentials);

    for (const call of [
      client.listRunArtifacts(installationId, repo, "1"),
      client.downloadArtifact(installationId, repo, "1", 1024),
      client.listRunArtifacts(installationId, other, runId),
    ]) {
      expect(await failure(call)).toMatchObject({ status: 404, retryable: false });
    }
  });
});
