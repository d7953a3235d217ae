import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { formatLine } from "../../src/lib/logger";
import { createRepo } from "../../src/services/repos";
import { createSecret } from "../../src/services/secrets";
import { createToken } from "../../src/services/tokens";
import { createUser } from "../../src/services/users";
import { api } from "./api-support";
import { keyring, payload, sampleTests, serviceContext, upload } from "./ingestion-support";

/**
 * The logs of a realistic session through the Worker: uploads signed with a secret, API calls with personal
 * tokens, failed authentications, a token and a secret minted (shown once in their answers), metrics scraped
 * with the operator token, personal data in bodies and query strings. One structured line per request, and
 * not one secret, token, connection string, email or query value anywhere in what was logged.
 */
const OPERATOR_TOKEN = `op-${crypto.randomUUID()}-${crypto.randomUUID()}`;
const bindings: Cloudflare.Env = { ...env, OPERATOR_TOKEN };

function captureLogs(): string[] {
  const lines: string[] = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
  return lines;
}

afterEach(() => vi.restoreAllMocks());

interface RequestLine {
  level: string;
  event: string;
  requestId: string;
  method: string;
  route: string;
  status: number;
  ms: number;
  repoId?: string;
}

describe("request logs of a realistic session", () => {
  it("one line per request by route pattern, and nothing secret or personal in any line", async () => {
    const email = `jane.doe+${crypto.randomUUID().slice(0, 8)}@example.org`;
    const ctx = serviceContext();
    const user = await createUser(ctx, { login: `log-${crypto.randomUUID().slice(0, 8)}`, name: "Jane Doe", email });
    const { token } = await createToken(ctx, { userId: user.id });
    const repo = await createRepo(ctx, user.id, { owner: `logs-${crypto.randomUUID().slice(0, 8)}`, name: "r" });
    const { plaintext: signingSecret } = await createSecret(ctx, await keyring(), { repoId: repo.id });
    const wrongToken = `ap_${crypto.randomUUID().replaceAll("-", "")}${crypto.randomUUID().replaceAll("-", "")}`;
    const queryValue = `needle-${crypto.randomUUID().slice(0, 8)}`;

    const lines = captureLogs();
    const answers: { status: number; requestId: string | null }[] = [];
    const record = async (res: Response) => {
      answers.push({ status: res.status, requestId: res.headers.get("X-Request-Id") });
      return res.text();
    };

    const tests = sampleTests(5).map((t, i) =>
      i === 3 ? { ...t, failureDetails: `expected mail to ${email} with password=${queryValue}` } : t,
    );
    await record(
      await upload(payload(repo.id, { branch: `feature/${email}` }, tests), {
        repoId: repo.id,
        secret: signingSecret,
        bindings,
      }),
    );
    await record(
      await upload(payload(repo.id), {
        repoId: repo.id,
        secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        bindings,
      }),
    );
    await record(await api("GET", "/api/me", { token, bindings }));
    await record(
      await api("GET", `/api/repos/${repo.id}/tests?q=${encodeURIComponent(email)}&token=${queryValue}`, {
        token,
        bindings,
      }),
    );
    await record(await api("GET", `/api/repos/${repo.id}/ingestions`, { token: wrongToken, bindings }));
    await record(await api("GET", `/api/me?access_token=${token}`, { bindings }));
    const minted = await api("POST", "/api/auth/tokens", { token, body: {}, bindings });
    const newToken = (JSON.parse(await record(minted)) as { token: string }).token;
    const secretAnswer = await api("POST", `/api/repos/${repo.id}/secrets`, { token, body: {}, bindings });
    const newSecret = JSON.parse(await record(secretAnswer)) as { secret?: string; plaintext?: string };
    await record(await api("GET", "/api/metrics", { token: OPERATOR_TOKEN, bindings }));
    await record(await api("GET", "/api/metrics", { token: `${OPERATOR_TOKEN}x`, bindings }));
    await record(await api("GET", "/api/health", { bindings }));
    await record(await api("GET", `/api/no-such-route/${email}?secret=${queryValue}`, { bindings }));
    vi.restoreAllMocks();

    expect(answers.map((a) => a.status)).toEqual([
      200,
      401,
      200,
      200,
      401,
      401,
      201,
      201,
      200,
      401,
      expect.any(Number),
      404,
    ]);
    expect(newToken).toMatch(/^ap_/);

    // Every line is one JSON object; one request line per request, in order, with the answer's request id.
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requests = parsed.filter((entry) => entry.event === "request") as unknown as RequestLine[];
    expect(requests.map((r) => r.requestId)).toEqual(answers.map((a) => a.requestId));
    expect(requests.map((r) => `${r.method} ${r.route} ${r.status}`)).toEqual([
      "POST /api/ingestion 200",
      "POST /api/ingestion 401",
      "GET /api/me 200",
      "GET /api/repos/:repoId/tests 200",
      "GET /api/repos/:repoId/ingestions 401",
      "GET /api/me 401",
      "POST /api/auth/tokens 201",
      "POST /api/repos/:repoId/secrets 201",
      "GET /api/metrics 200",
      "GET /api/metrics 401",
      `GET /api/health ${answers[10].status}`,
      "GET unmatched 404",
    ]);
    for (const line of requests) {
      expect(line.level).toBe("info");
      expect(line.ms).toBeTypeOf("number");
      expect(Object.keys(line).sort()).toEqual(
        ["event", "level", "method", "ms", "requestId", "route", "status", ...(line.repoId ? ["repoId"] : [])].sort(),
      );
    }
    // The repository is named once it is known: the signed upload and the repository routes a person may see.
    expect(requests[0].repoId).toBe(repo.id);
    expect(requests[3].repoId).toBe(repo.id);

    const everything = lines.join("\n");
    const databaseUrl = new URL(env.DATABASE_URL as string);
    const forbidden = [
      signingSecret,
      token,
      wrongToken,
      newToken,
      ...Object.values(newSecret).filter((v): v is string => typeof v === "string" && v.length > 20),
      OPERATOR_TOKEN,
      env.DATABASE_URL as string,
      env.DATABASE_URL_READONLY as string,
      ...(databaseUrl.password.length >= 8 ? [databaseUrl.password] : []),
      env.HMAC_KEK as string,
      (env.HMAC_KEK as string).split(":")[1],
      email,
      email.split("@")[0],
      queryValue,
      "Jane Doe",
      "?",
    ];
    for (const leaked of forbidden) expect(everything, `the logs carry ${leaked.slice(0, 12)}…`).not.toContain(leaked);
  });
});

describe("the logger's second line of defence", () => {
  it("blanks credential-named fields and rewrites credential-looking values, nested too", () => {
    const line = formatLine("error", "oops", {
      authorization: "Bearer abc.def",
      detail: "connect postgres://app:hunter2-long@db.example/x failed for jane@example.org",
      nested: { token: "ap_xxxxxxxxxxxxxxxxxxxxxxxx", note: ["whsec_AAAAAAAAAAAAAAAAAAAAAAAA", "Bearer zzz"] },
      ok: 42,
    });
    const parsed = JSON.parse(line);
    expect(parsed).toEqual({
      level: "error",
      event: "oops",
      authorization: "[redacted]",
      detail: "connect [connection string] failed for [email]",
      nested: { token: "[redacted]", note: ["[secret]", "Bearer [redacted]"] },
      ok: 42,
    });
  });

  it("knows the GitHub App's credentials, and does not write what lies too deep to check", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiI0MjQyNDIifQ.c2lnbmF0dXJlLWJ5dGVz";
    const line = formatLine("warn", "github", {
      detail: `token ghs_${"a".repeat(36)} and bearer ${jwt} then ${jwt}`,
      key: "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
      privateKey: "anything",
      deep: { a: { b: { c: { d: { e: "ghs_hidden-below-the-walk" } } } } },
    });
    expect(JSON.parse(line)).toEqual({
      level: "warn",
      event: "github",
      detail: "token [token] and Bearer [redacted] then [jwt]",
      key: "[private key]",
      privateKey: "[redacted]",
      deep: { a: { b: { c: { d: "[nested]" } } } },
    });
  });
});
