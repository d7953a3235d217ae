import { createScheduledController } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { repos } from "../../src/db/schema";
import worker from "../../src/index";
import { ERROR_CODES } from "../../src/lib/errors";
import type { GithubQueueMessage } from "../../src/services/github/messages";
import { GITHUB_WEBHOOK_MAX_BODY_BYTES } from "../../src/services/github/webhook-payloads";
import {
  deliver,
  githubId,
  type InstallationSpec,
  installationEvent,
  installationRepositoriesEvent,
  installationSpec,
  pingEvent,
  type RepoSpec,
  repoSpec,
  signGithub,
  uniqueOwner,
  workflowRunEvent,
} from "./github-payloads";
import { testDb } from "./ingestion-support";

/**
 * POST /api/webhooks/github through the Worker: signatures, headers and payloads (hand-picked and generated),
 * redelivery and concurrent copies, the installation lifecycle and the repositories it links, workflow runs
 * recorded and queued, and the hourly upkeep job. Every test makes its own installation, repositories and
 * delivery ids; the database is shared with the other files.
 */

afterEach(() => vi.restoreAllMocks());

type Envelope = { error: { code: string; message: string; requestId: string; details?: unknown } };
type Answer = {
  deliveryId: string;
  event: string;
  action: string | null;
  outcome: string;
  isDuplicate: boolean;
  queued: boolean;
  message: string;
  recordId?: string;
};

/** A stand-in for GITHUB_QUEUE that keeps what it is sent (or refuses it). */
function fakeQueue(fail = false) {
  const messages: GithubQueueMessage[] = [];
  const queue = {
    messages,
    async send(message: GithubQueueMessage) {
      if (fail) throw new Error("queue unavailable");
      messages.push(structuredClone(message));
    },
  };
  return { queue, bindings: { ...env, GITHUB_QUEUE: queue as unknown as Queue<GithubQueueMessage> } };
}

async function deliveryRow(deliveryId: string) {
  const result = await testDb().execute<{
    event: string;
    action: string | null;
    installation_id: string | null;
    outcome: string;
  }>(
    sql`select event, action, installation_id::text, outcome from github_webhook_deliveries
      where delivery_id = ${deliveryId}::uuid`,
  );
  return result.rows[0] ?? null;
}

async function installationRow(installationId: number) {
  const result = await testDb().execute<{
    account_id: string;
    account_type: string;
    account_login: string;
    target_type: string;
    target_id: string | null;
    repository_ids: string[];
    permissions: Record<string, string>;
    events: string[];
    suspended_at: string | null;
    suspended_by: string | null;
    updated_at: string;
  }>(sql`
    select account_id::text, account_type, account_login, target_type, target_id::text,
      array(select id::text from unnest(repository_ids) as id order by id) as repository_ids, permissions, events,
      suspended_at::text, suspended_by, updated_at::text
    from github_app_installations where installation_id = ${installationId}::bigint`);
  return result.rows[0] ?? null;
}

async function reposOf(owner: string) {
  const result = await testDb().execute<{ id: string; gh_id: string | null; name: string; visibility: string }>(
    sql`select id, gh_id::text, name, visibility from repos where owner = ${owner} order by name`,
  );
  return result.rows;
}

async function auditOf(installationId: number) {
  const result = await testDb().execute<{
    action: string;
    subject: string;
    description: string;
    metadata: Record<string, unknown>;
    actor_id: string | null;
  }>(sql`select action, subject, description, metadata, actor_id from audit_logs
    where subject_id = ${String(installationId)} order by created_at, (metadata->>'deliveryId')`);
  return result.rows;
}

async function runsOf(repoGhId: number) {
  const result = await testDb().execute<{
    id: string;
    repo_id: string;
    installation_id: string;
    workflow_run_id: string;
    run_attempt: number;
    head_sha: string;
    pull_requests: number[];
    status: string;
  }>(sql`
    select w.id, w.repo_id, w.installation_id::text, w.workflow_run_id::text, w.run_attempt, w.head_sha,
      w.pull_requests, w.status
    from github_workflow_runs w join repos r on r.id = w.repo_id
    where r.gh_id = ${repoGhId}::bigint order by w.workflow_run_id, w.run_attempt`);
  return result.rows;
}

async function expectAnswer(res: Response, status: number, fields: Partial<Answer>): Promise<Answer> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const body = JSON.parse(text) as Answer;
  expect(body).toMatchObject(fields);
  return body;
}

async function expectError(res: Response, status: number, code?: string): Promise<Envelope> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text) as Envelope;
  expect(body.error).toMatchObject({ code: code ?? expect.any(String), message: expect.any(String) });
  expect(body.error.requestId).toEqual(expect.any(String));
  return body;
}

/** An installation with these repositories, created through the webhook. */
async function installed(repositories: RepoSpec[], spec: InstallationSpec = installationSpec()) {
  const res = await deliver("installation", installationEvent("created", spec, repositories));
  await expectAnswer(res, 200, { outcome: "applied" });
  return spec;
}

async function repoIdOf(ghId: number): Promise<string> {
  const result = await testDb().execute<{ id: string }>(sql`select id from repos where gh_id = ${ghId}::bigint`);
  return result.rows[0].id;
}

describe("ping, unknown events and unused actions", () => {
  it("ping is answered 200 and stores nothing", async () => {
    const deliveryId = crypto.randomUUID();
    const res = await deliver("ping", pingEvent(), { deliveryId });
    await expectAnswer(res, 200, { outcome: "pong", event: "ping", deliveryId, isDuplicate: false });
    expect(await deliveryRow(deliveryId)).toBeNull();
  });

  it("an event the App does not use is 202 with nothing stored, not even the delivery", async () => {
    for (const event of ["push", "pull_request", "check_suite", "star", "installation_target"]) {
      const deliveryId = crypto.randomUUID();
      const res = await deliver(event, { action: "created", installation: { id: githubId() } }, { deliveryId });
      await expectAnswer(res, 202, { outcome: "ignored", event, queued: false });
      expect(await deliveryRow(deliveryId)).toBeNull();
    }
  });

  it("a handled event with an action the App does not use is 202 with nothing stored", async () => {
    const spec = installationSpec();
    const repo = repoSpec(uniqueOwner(), "unused-actions");
    const cases: [string, unknown][] = [
      ["workflow_run", workflowRunEvent(spec.id, repo, {}, "requested")],
      ["workflow_run", workflowRunEvent(spec.id, repo, {}, "in_progress")],
      ["installation", installationEvent("renamed", spec)],
      ["installation_repositories", { ...installationRepositoriesEvent("added", spec, [repo]), action: "moved" }],
      ["installation", { installation: { id: spec.id } }],
    ];
    for (const [event, payload] of cases) {
      const deliveryId = crypto.randomUUID();
      await expectAnswer(await deliver(event, payload, { deliveryId }), 202, { outcome: "ignored" });
      expect(await deliveryRow(deliveryId)).toBeNull();
    }
    expect(await installationRow(spec.id)).toBeNull();
    expect(await reposOf(repo.owner)).toEqual([]);
  });
});

describe("the request before the signature", () => {
  it("without GITHUB_WEBHOOK_SECRET the endpoint is misconfigured, and stores nothing", async () => {
    const deliveryId = crypto.randomUUID();
    const res = await deliver("ping", pingEvent(), {
      deliveryId,
      bindings: { ...env, GITHUB_WEBHOOK_SECRET: undefined },
    });
    await expectError(res, ERROR_CODES.misconfigured, "misconfigured");
  });

  it("another Content-Type is 415", async () => {
    for (const type of ["application/x-www-form-urlencoded", "text/plain", "application/jsonp"]) {
      const res = await deliver("ping", pingEvent(), { headers: { "Content-Type": type } });
      await expectError(res, 415, "unsupported_media_type");
    }
    const res = await deliver("ping", pingEvent(), { headers: { "Content-Type": "application/json; charset=utf-8" } });
    expect(res.status).toBe(200);
  });

  it("a body over the cap is 413, whatever Content-Length says, and stores nothing", async () => {
    const spec = installationSpec();
    const payload = installationEvent("created", spec, []);
    const padded = JSON.stringify({ ...payload, padding: "x".repeat(GITHUB_WEBHOOK_MAX_BODY_BYTES) });
    const deliveryId = crypto.randomUUID();
    await expectError(
      await deliver("installation", null, { deliveryId, rawBody: new TextEncoder().encode(padded) }),
      413,
    );
    // A body that claims to be small.
    const stream = new Blob([padded]).stream();
    const res = await worker.fetch(
      new Request("http://worker/api/webhooks/github", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Content-Length": "10",
          "X-GitHub-Event": "installation",
          "X-GitHub-Delivery": deliveryId,
          "X-Hub-Signature-256": await signGithub(padded),
        },
        body: stream,
        duplex: "half",
      } as RequestInit),
      env,
      { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext,
    );
    await expectError(res, 413, "payload_too_large");
    expect(await deliveryRow(deliveryId)).toBeNull();
    expect(await installationRow(spec.id)).toBeNull();
  });
});

describe("the signature", () => {
  async function expectRejected(res: Response, deliveryId: string | null, reason: string) {
    const body = await expectError(res, 401, "unauthorized");
    expect(body.error.message).toBe("Missing or invalid signature.");
    if (!deliveryId) return;
    const audit = await testDb().execute<{
      action: string;
      subject: string;
      description: string;
      metadata: Record<string, unknown>;
    }>(sql`select action, subject, description, metadata from audit_logs
      where subject_id = ${`github-delivery:${deliveryId}`}`);
    expect(audit.rows).toEqual([
      {
        action: "hmac_auth_failure",
        subject: "security",
        description: "GitHub webhook signature rejected",
        metadata: { reason, source: "github_webhook", deliveryId, windowStart: expect.any(String) },
      },
    ]);
  }

  it("a good one over the exact bytes is accepted", async () => {
    const spec = installationSpec();
    // Key order and whitespace GitHub's serialiser might use: the bytes are verified, never re-serialised JSON.
    const text = `{ "action" : "created",\n  "installation": ${JSON.stringify(installationEvent("created", spec).installation, null, 2)} }`;
    const res = await deliver("installation", null, { rawBody: new TextEncoder().encode(text) });
    await expectAnswer(res, 200, { outcome: "applied" });
    expect(await installationRow(spec.id)).not.toBeNull();
  });

  it("missing, malformed or wrong: 401, audited without the signature or body, nothing else stored", async () => {
    const spec = installationSpec();
    const payload = installationEvent("created", spec, [repoSpec(uniqueOwner(), "unsigned")]);
    const body = JSON.stringify(payload);
    const good = await signGithub(body);
    const cases: [string | null, string][] = [
      [null, "missing_signature"],
      ["", "missing_signature"],
      ["sha1=0123456789abcdef0123456789abcdef01234567", "malformed_signature"],
      [good.replace("sha256=", ""), "malformed_signature"],
      [`${good}00`, "malformed_signature"],
      [good.slice(0, -2), "malformed_signature"],
      [`sha256=${"zz".repeat(32)}`, "malformed_signature"],
      [`sha256=${"0".repeat(64)}`, "bad_signature"],
      [await signGithub(body, "another-secret-of-enough-length"), "bad_signature"],
      [await signGithub(`${body} `), "bad_signature"],
    ];
    for (const [signature, reason] of cases) {
      const deliveryId = crypto.randomUUID();
      const res = await deliver("installation", payload, { deliveryId, signature });
      await expectRejected(res, deliveryId, reason);
      expect(await deliveryRow(deliveryId)).toBeNull();
    }
    // Bytes changed after signing.
    const deliveryId = crypto.randomUUID();
    const tampered = new TextEncoder().encode(body.replace('"created"', '"deleted"'));
    await expectRejected(
      await deliver("installation", null, { deliveryId, rawBody: tampered, signature: good }),
      deliveryId,
      "bad_signature",
    );

    expect(await installationRow(spec.id)).toBeNull();
    expect(await auditOf(spec.id)).toEqual([]);
    const audits = await testDb().execute<{ text: string }>(
      sql`select metadata::text || coalesce(description, '') as text from audit_logs where action = 'hmac_auth_failure'
        and metadata->>'source' = 'github_webhook'`,
    );
    const all = audits.rows.map((r) => r.text).join("\n");
    expect(all).not.toContain(good.slice(7, 40));
    expect(all).not.toContain(spec.account.login);
  });

  it("a delivery without a usable id is tallied under the webhook and still refused", async () => {
    const tally = async () =>
      (
        await testDb().execute<{ n: number }>(sql`select coalesce(sum(failures), 0)::int as n from auth_failure_tallies
          where subject_id = 'github-webhook' and reason = 'bad_signature'`)
      ).rows[0].n;
    const before = await tally();
    const res = await deliver("ping", pingEvent(), {
      headers: { "X-GitHub-Delivery": "not-a-guid" },
      signature: `sha256=${"1".repeat(64)}`,
    });
    await expectError(res, 401, "unauthorized");
    expect(await tally()).toBeGreaterThan(before);
  });

  it("a client address past its budget of failures gets 429", async () => {
    const strict = { ...env, AUTH_FAILURE_LIMITER: env.STRICT_AUTH_FAILURE_LIMITER };
    const address = `2001:db8::${Math.floor(Math.random() * 0xffff).toString(16)}`;
    // A limit of 5 per 60 s window: 12 failures span at most two windows, so at least 2 are refused.
    const answers = await Promise.all(
      Array.from({ length: 12 }, () =>
        deliver("ping", pingEvent(), {
          bindings: strict,
          signature: `sha256=${"2".repeat(64)}`,
          headers: { "CF-Connecting-IP": address },
        }),
      ),
    );
    const limited = answers.filter((r) => r.status === 429);
    expect(answers.filter((r) => r.status === 401).length + limited.length).toBe(12);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited[0].headers.get("Retry-After")).toBe("60");
    await expectError(limited[0], 429, "rate_limited");
  });

  it("generated signatures that are not the right one: always 401 and nothing stored", async () => {
    const spec = installationSpec();
    const body = JSON.stringify(installationEvent("created", spec, []));
    const good = await signGithub(body);
    const ascii = fc.string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
      maxLength: 90,
    });
    const hex = (n: number) =>
      fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength: n, maxLength: n });
    const signature = fc.oneof(
      ascii,
      ascii.map((s) => `sha256=${s}`),
      hex(64).map((h) => `sha256=${h}`),
      fc.integer({ min: 0, max: 130 }).chain((n) => hex(n).map((h) => `sha256=${h}`)),
      fc.nat({ max: 63 }).map((i) => {
        // The good signature with one hex digit changed.
        const digits = good.slice(7).split("");
        digits[i] = digits[i] === "0" ? "1" : "0";
        return `sha256=${digits.join("")}`;
      }),
    );
    await fc.assert(
      fc.asyncProperty(signature, async (sig) => {
        fc.pre(sig.trim().toLowerCase() !== good);
        const deliveryId = crypto.randomUUID();
        const res = await deliver("installation", null, {
          deliveryId,
          signature: sig,
          rawBody: new TextEncoder().encode(body),
        });
        await expectError(res, 401, "unauthorized");
        expect(await deliveryRow(deliveryId)).toBeNull();
      }),
      { numRuns: 40 },
    );
    expect(await installationRow(spec.id)).toBeNull();
  });
});

describe("headers and payloads after a good signature", () => {
  it("a missing or malformed X-GitHub-Delivery or X-GitHub-Event is 400", async () => {
    const spec = installationSpec();
    const payload = installationEvent("created", spec, []);
    const cases: Record<string, string>[] = [
      { "X-GitHub-Delivery": "12345" },
      { "X-GitHub-Delivery": `${crypto.randomUUID()}x` },
      { "X-GitHub-Event": "Installation" },
      { "X-GitHub-Event": "installation;drop" },
      { "X-GitHub-Event": "" },
    ];
    for (const headers of cases) {
      const res = await deliver("installation", payload, { headers });
      await expectError(res, 400, "bad_request");
    }
    for (const omit of ["X-GitHub-Delivery", "X-GitHub-Event"]) {
      await expectError(await deliver("installation", payload, { omit: [omit] }), 400, "bad_request");
    }
    expect(await installationRow(spec.id)).toBeNull();
  });

  it("invalid UTF-8, invalid JSON and values that do not fit are 400 naming the field, and store nothing", async () => {
    const spec = installationSpec();
    const owner = uniqueOwner();
    const valid = installationEvent("created", spec, [repoSpec(owner, "fits")]);
    const mutate = (change: (p: ReturnType<typeof installationEvent>) => void) => {
      const copy = structuredClone(valid);
      change(copy);
      return JSON.stringify(copy);
    };
    const bodies: [string | Uint8Array, string | null][] = [
      [new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), null],
      ["{", null],
      ["[]", "(root)"],
      ["null", "(root)"],
      [
        mutate((p) => {
          p.installation.account.login = "nul\u0000byte";
        }),
        "installation.account.login",
      ],
      [
        mutate((p) => {
          p.installation.account.login = "lone \ud800";
        }),
        "installation.account.login",
      ],
      [
        mutate((p) => {
          p.installation.id = (2 ** 64) as number;
        }),
        "installation.id",
      ],
      [
        mutate((p) => {
          p.installation.id = -1;
        }),
        "installation.id",
      ],
      [
        mutate((p) => {
          p.installation.id = 1.5;
        }),
        "installation.id",
      ],
      [
        mutate((p) => {
          (p.repositories as { name: string }[])[0].name = "../../etc";
        }),
        "repositories.0.name",
      ],
      [
        mutate((p) => {
          (p.repositories as { full_name: string }[])[0].full_name = "someone/else/fits";
        }),
        "repositories.0.full_name",
      ],
      [
        mutate((p) => {
          p.installation.suspended_at = "yesterday";
        }),
        "installation.suspended_at",
      ],
      [
        JSON.stringify(valid).replace(`"id":${spec.id},"client_id"`, `"id":1${"0".repeat(400)},"client_id"`),
        "installation.id",
      ],
      [`${"[".repeat(100_000)}${"]".repeat(100_000)}`, "(root)"],
      [
        JSON.stringify({ ...valid, installation: { ...valid.installation, permissions: { a: { b: { c: {} } } } } }),
        "installation.permissions.a",
      ],
    ];
    for (const [body, path] of bodies) {
      const deliveryId = crypto.randomUUID();
      const rawBody = typeof body === "string" ? new TextEncoder().encode(body) : body;
      const res = await deliver("installation", null, { deliveryId, rawBody });
      const error = await expectError(res, 400);
      if (path) expect(error.error.details, JSON.stringify(error)).toContainEqual(expect.objectContaining({ path }));
      expect(await deliveryRow(deliveryId)).toBeNull();
    }
    expect(await installationRow(spec.id)).toBeNull();
    expect(await reposOf(owner)).toEqual([]);
  });

  it("generated bodies, events and delivery ids, all signed: a 4xx in the envelope or a 2xx, never a 5xx; a 4xx stores nothing", async () => {
    const spec = installationSpec();
    const owner = uniqueOwner();
    const repo = repoSpec(owner, "fuzzed");
    const templates: [string, Record<string, unknown>][] = [
      ["installation", installationEvent("created", spec, [repo])],
      ["installation_repositories", installationRepositoriesEvent("added", spec, [repo])],
      ["workflow_run", workflowRunEvent(spec.id, repo, { pullRequests: [3] })],
    ];
    const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    const hostileString = fc.oneof(
      fc.string({ unit: codeUnit, maxLength: 30 }),
      fc.constantFrom("", "\u0000", "\ud800", "\udfff", "a/b", "x".repeat(300), "测试", "../x"),
    );
    const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
      hostileString,
      fc.integer(),
      fc.double(),
      fc.constantFrom(2 ** 53, 2 ** 63, 1e300, -0, Number.MAX_SAFE_INTEGER, 2 ** 31),
      fc.boolean(),
      fc.constant(null),
      fc.jsonValue({ maxDepth: 3 }),
    );
    /** A field path of the template, to overwrite. */
    const paths = (value: unknown, prefix: string[] = []): string[][] => {
      if (value === null || typeof value !== "object") return [prefix];
      return [prefix, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...prefix, k]))];
    };
    const mutated = fc.tuple(fc.nat({ max: templates.length - 1 }), fc.nat(), hostileValue).map(([t, p, value]) => {
      const [event, template] = templates[t];
      const copy = structuredClone(template) as Record<string, unknown>;
      const all = paths(copy).filter((path) => path.length > 0);
      const path = all[p % all.length];
      let node: Record<string, unknown> = copy;
      for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
      // A valid id of someone else's could land in rows other files use (gh_id is unique): ids only go bad.
      const key = path[path.length - 1];
      node[key] = key === "id" && Number.isSafeInteger(value) && (value as number) > 0 ? -1 : value;
      return { event, body: new TextEncoder().encode(JSON.stringify(copy)) };
    });
    const raw = fc.record({
      event: fc.constantFrom("installation", "installation_repositories", "workflow_run"),
      body: fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 4 }).map((v) => new TextEncoder().encode(JSON.stringify(v) ?? "null")),
        fc.nat({ max: 5000 }).map((n) => new TextEncoder().encode(`${'{"a":'.repeat(n)}1${"}".repeat(n)}`)),
      ),
    });
    const eventHeader = fc.oneof(
      fc.constantFrom("installation", "installation_repositories", "workflow_run", "ping", "push", "INSTALLATION"),
      fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 70 }),
    );
    const deliveryHeader = fc.oneof(
      fc.uuid().map((id) => ({ id, valid: true })),
      fc.uuid().map((id) => ({ id: id.toUpperCase(), valid: true })),
      fc
        .string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 })
        .map((id) => ({ id, valid: false })),
    );
    const delivery = fc.record({
      payload: fc.oneof(mutated, raw),
      event: fc.option(eventHeader, { nil: undefined }),
      deliveryId: deliveryHeader,
    });

    await fc.assert(
      fc.asyncProperty(delivery, async ({ payload, event, deliveryId }) => {
        fc.pre(!deliveryId.valid || !(await deliveryRow(deliveryId.id.toLowerCase())));
        const eventName = event ?? payload.event;
        const res = await deliver(eventName, null, {
          rawBody: payload.body,
          headers: { "X-GitHub-Delivery": deliveryId.id },
        });
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        const stored =
          deliveryId.valid && /^[0-9a-f-]{36}$/i.test(deliveryId.id)
            ? await deliveryRow(deliveryId.id.toLowerCase())
            : null;
        if (res.status >= 400) {
          expect((JSON.parse(text) as Envelope).error.code).toEqual(expect.any(String));
          expect(stored).toBeNull();
        } else {
          const answer = JSON.parse(text) as Answer;
          if (answer.outcome === "ignored" && !stored) return; // unknown event or unused action: nothing stored
          if (answer.outcome === "pong") expect(stored).toBeNull();
        }
      }),
      { numRuns: 60 },
    );
    // Whatever was accepted, nothing landed under a repository name that is not GitHub's.
    const odd = await testDb().execute<{ n: number }>(
      sql`select count(*)::int as n from repos where owner = ${owner} and name !~ '^[A-Za-z0-9._-]+$'`,
    );
    expect(odd.rows[0].n).toBe(0);
  });

  it("deliveries are rate limited per installation (429 with Retry-After), and a refused one is not recorded", async () => {
    const strict = { ...env, UPLOAD_LIMITER: env.STRICT_UPLOAD_LIMITER };
    const spec = installationSpec();
    const ids = Array.from({ length: 12 }, () => crypto.randomUUID());
    const answers = await Promise.all(
      ids.map((deliveryId) =>
        deliver("installation", installationEvent("new_permissions_accepted", spec), { deliveryId, bindings: strict }),
      ),
    );
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited[0].headers.get("Retry-After")).toBe("60");
    for (const [i, res] of answers.entries()) {
      const row = await deliveryRow(ids[i]);
      if (res.status === 429) expect(row).toBeNull();
      else expect(row?.outcome).toBe("applied");
    }
  });
});

describe("installations", () => {
  it("the whole lifecycle keeps the installation and its repositories true, each change audited", async () => {
    const owner = uniqueOwner();
    const db = testDb();
    // Registered by hand before the App came: linked by owner/name, keeps its id.
    const [legacyRow] = await db.insert(repos).values({ owner, name: "legacy", visibility: "public" }).returning();
    const legacy = repoSpec(owner, "legacy");
    const fresh = repoSpec(owner, "fresh", true);
    const spec = installationSpec({ account: { login: owner, id: githubId(), type: "Organization" } });
    const ghIds = (...list: RepoSpec[]) => list.map((r) => String(r.id)).sort();

    // created
    const createdId = crypto.randomUUID();
    await expectAnswer(
      await deliver("installation", installationEvent("created", spec, [legacy, fresh]), { deliveryId: createdId }),
      200,
      {
        outcome: "applied",
        event: "installation",
        action: "created",
        deliveryId: createdId,
      },
    );
    const afterCreate = await installationRow(spec.id);
    expect(afterCreate).toMatchObject({
      account_id: String(spec.account.id),
      account_type: "Organization",
      account_login: owner,
      target_type: "Organization",
      target_id: String(spec.account.id),
      repository_ids: ghIds(legacy, fresh),
      permissions: { actions: "read", checks: "write", metadata: "read", pull_requests: "read" },
      events: ["workflow_run"],
      suspended_at: null,
      suspended_by: null,
    });
    let rows = await reposOf(owner);
    expect(rows).toEqual([
      { id: expect.any(String), gh_id: String(fresh.id), name: "fresh", visibility: "private" },
      { id: legacyRow.id, gh_id: String(legacy.id), name: "legacy", visibility: "public" },
    ]);
    const freshRepoId = rows[0].id;
    expect(await deliveryRow(createdId)).toEqual({
      event: "installation",
      action: "created",
      installation_id: String(spec.id),
      outcome: "applied",
    });
    const hmacSecrets = await db.execute<{ n: number }>(
      sql`select count(*)::int as n from hmac_secrets where repo_id = ${freshRepoId}::uuid`,
    );
    expect(hmacSecrets.rows[0].n).toBe(0);

    // The same delivery again: acknowledged, nothing changes.
    await expectAnswer(
      await deliver("installation", installationEvent("created", spec, [legacy]), { deliveryId: createdId }),
      200,
      {
        outcome: "duplicate",
        isDuplicate: true,
      },
    );
    expect(await installationRow(spec.id)).toEqual(afterCreate);
    expect(await auditOf(spec.id)).toHaveLength(1);

    // installation_repositories added: one renamed on GitHub (same id), one new.
    const renamed = { ...fresh, name: "fresh-renamed" };
    const added = repoSpec(owner, "added");
    await expectAnswer(
      await deliver("installation_repositories", installationRepositoriesEvent("added", spec, [renamed, added])),
      200,
      {
        outcome: "applied",
      },
    );
    expect((await installationRow(spec.id))?.repository_ids).toEqual(ghIds(legacy, fresh, added));
    rows = await reposOf(owner);
    expect(rows.map((r) => [r.name, r.gh_id, r.visibility])).toEqual([
      ["added", String(added.id), "public"],
      ["fresh-renamed", String(fresh.id), "private"],
      ["legacy", String(legacy.id), "public"],
    ]);
    expect(rows.find((r) => r.name === "fresh-renamed")?.id).toBe(freshRepoId);

    // removed: out of repository_ids, the repository and its data stay.
    await expectAnswer(
      await deliver("installation_repositories", installationRepositoriesEvent("removed", spec, [legacy])),
      200,
      {
        outcome: "applied",
      },
    );
    expect((await installationRow(spec.id))?.repository_ids).toEqual(ghIds(fresh, added));
    expect((await reposOf(owner)).map((r) => r.name)).toEqual(["added", "fresh-renamed", "legacy"]);

    // suspend, unsuspend.
    const suspended = { ...spec, suspendedAt: "2026-11-03T04:05:06Z", suspendedBy: "an-admin" };
    await expectAnswer(await deliver("installation", installationEvent("suspend", suspended)), 200, {
      outcome: "applied",
    });
    expect(await installationRow(spec.id)).toMatchObject({
      suspended_at: expect.stringMatching(/^2026-11-03 04:05:06/),
      suspended_by: "an-admin",
      repository_ids: ghIds(fresh, added),
    });
    await expectAnswer(await deliver("installation", installationEvent("unsuspend", spec)), 200, {
      outcome: "applied",
    });
    expect(await installationRow(spec.id)).toMatchObject({ suspended_at: null, suspended_by: null });

    // new_permissions_accepted.
    const widened = {
      ...spec,
      permissions: { actions: "read", checks: "write", metadata: "read", pull_requests: "write" },
      events: ["workflow_run", "check_run"],
    };
    await expectAnswer(await deliver("installation", installationEvent("new_permissions_accepted", widened)), 200, {
      outcome: "applied",
    });
    expect(await installationRow(spec.id)).toMatchObject({ permissions: widened.permissions, events: widened.events });

    // deleted: the installation goes, the repositories stay (with their GitHub ids).
    await expectAnswer(await deliver("installation", installationEvent("deleted", spec, [fresh, added])), 200, {
      outcome: "applied",
    });
    expect(await installationRow(spec.id)).toBeNull();
    expect((await reposOf(owner)).map((r) => [r.name, r.gh_id])).toEqual([
      ["added", String(added.id)],
      ["fresh-renamed", String(fresh.id)],
      ["legacy", String(legacy.id)],
    ]);

    // One audit row per change, naming ids only: no login of the account, the sender or the suspender.
    const audit = await auditOf(spec.id);
    expect(audit.map((a) => [a.action, a.subject, a.metadata.event, a.metadata.action])).toEqual([
      ["config_updated", "system", "installation", "created"],
      ["config_updated", "system", "installation_repositories", "added"],
      ["config_updated", "system", "installation_repositories", "removed"],
      ["config_updated", "system", "installation", "suspend"],
      ["config_updated", "system", "installation", "unsuspend"],
      ["config_updated", "system", "installation", "new_permissions_accepted"],
      ["config_updated", "system", "installation", "deleted"],
    ]);
    expect(audit[0]).toMatchObject({
      actor_id: null,
      description: "GitHub App installed",
      metadata: {
        installationId: String(spec.id),
        deliveryId: createdId,
        repositoryIds: [String(legacy.id), String(fresh.id)],
        createdRepoIds: [freshRepoId],
        linkedRepoIds: [legacyRow.id],
        renamedRepoIds: [],
      },
    });
    expect(audit[1].metadata).toMatchObject({ renamedRepoIds: [freshRepoId], createdRepoIds: [expect.any(String)] });
    expect(audit[2].metadata).toMatchObject({ repositoryIds: [String(legacy.id)] });
    expect(audit[6].metadata.repositoryIds).toEqual(ghIds(fresh, added).sort((a, b) => Number(a) - Number(b)));
    const text = JSON.stringify(audit);
    for (const personal of [owner, "octocat", "an-admin"]) expect(text).not.toContain(personal);
  });

  it("a personal account's installation; a rename onto a name already taken keeps the old name", async () => {
    const login = uniqueOwner("user");
    const spec = installationSpec({ account: { login, id: githubId(), type: "User" } });
    const mine = repoSpec(login, "dotfiles", true);
    await installed([mine], spec);
    expect(await installationRow(spec.id)).toMatchObject({
      account_type: "User",
      account_login: login,
      target_type: "User",
    });
    // Someone registered login/taken by hand; GitHub renames dotfiles to taken.
    await testDb().insert(repos).values({ owner: login, name: "taken" });
    await expectAnswer(
      await deliver(
        "installation_repositories",
        installationRepositoriesEvent("added", spec, [{ ...mine, name: "taken" }]),
      ),
      200,
      {
        outcome: "applied",
      },
    );
    expect((await reposOf(login)).map((r) => [r.name, r.gh_id])).toEqual([
      ["dotfiles", String(mine.id)],
      ["taken", null],
    ]);
  });

  it("installation_repositories for an installation not seen before records it from the payload", async () => {
    const spec = installationSpec();
    const repo = repoSpec(uniqueOwner(), "late");
    await expectAnswer(
      await deliver("installation_repositories", installationRepositoriesEvent("added", spec, [repo])),
      200,
      {
        outcome: "applied",
      },
    );
    expect(await installationRow(spec.id)).toMatchObject({
      repository_ids: [String(repo.id)],
      account_login: spec.account.login,
    });
    expect((await reposOf(repo.owner)).map((r) => r.gh_id)).toEqual([String(repo.id)]);
  });

  it("concurrent copies of one delivery are applied once", async () => {
    const spec = installationSpec();
    const repo = repoSpec(uniqueOwner(), "concurrent");
    const deliveryId = crypto.randomUUID();
    const payload = installationEvent("created", spec, [repo]);
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => deliver("installation", payload, { deliveryId })),
    );
    const bodies = await Promise.all(answers.map((r) => r.json<Answer>()));
    expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200]);
    expect(bodies.filter((b) => b.outcome === "applied")).toHaveLength(1);
    expect(bodies.filter((b) => b.outcome === "duplicate")).toHaveLength(5);
    expect(await auditOf(spec.id)).toHaveLength(1);
    expect(await reposOf(repo.owner)).toHaveLength(1);
  });
});

describe("workflow_run completed", () => {
  async function linkedRepo() {
    const repo = repoSpec(uniqueOwner(), "service");
    const spec = await installed([repo]);
    return { repo, spec, repoId: await repoIdOf(repo.id) };
  }

  it("is recorded as a queued run attempt and its message is sent, ids as decimal strings", async () => {
    const { repo, spec, repoId } = await linkedRepo();
    const { queue, bindings } = fakeQueue();
    const runId = githubId();
    const deliveryId = crypto.randomUUID();
    const sha = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
    const payload = workflowRunEvent(spec.id, repo, { id: runId, headSha: sha, pullRequests: [7, 12, 7] });
    const answer = await expectAnswer(await deliver("workflow_run", payload, { deliveryId, bindings }), 202, {
      outcome: "queued",
      queued: true,
      isDuplicate: false,
      action: "completed",
      recordId: expect.any(String),
    });
    const [run] = await runsOf(repo.id);
    expect(run).toEqual({
      id: answer.recordId,
      repo_id: repoId,
      installation_id: String(spec.id),
      workflow_run_id: String(runId),
      run_attempt: 1,
      head_sha: sha.toLowerCase(),
      pull_requests: [7, 12],
      status: "queued",
    });
    expect(await deliveryRow(deliveryId)).toMatchObject({
      event: "workflow_run",
      action: "completed",
      outcome: "queued",
    });
    expect(queue.messages).toEqual([
      {
        kind: "workflow_run.completed",
        recordId: answer.recordId,
        repoId,
        installationId: String(spec.id),
        repository: { owner: repo.owner, name: repo.name },
        workflowRunId: String(runId),
        runAttempt: 1,
        headSha: sha.toLowerCase(),
        headBranch: "feature/flaky",
        pullRequests: [7, 12],
      },
    ]);

    // Redelivery of the same delivery: acknowledged, nothing sent.
    await expectAnswer(await deliver("workflow_run", payload, { deliveryId, bindings }), 200, {
      outcome: "duplicate",
      isDuplicate: true,
    });
    // The same run attempt under a new delivery id: recorded as ignored, not queued twice.
    const again = crypto.randomUUID();
    await expectAnswer(await deliver("workflow_run", payload, { deliveryId: again, bindings }), 202, {
      outcome: "ignored",
      queued: false,
    });
    expect(await deliveryRow(again)).toMatchObject({ outcome: "ignored" });
    expect(queue.messages).toHaveLength(1);
    // A re-run is a new attempt: queued.
    const rerun = workflowRunEvent(spec.id, repo, { id: runId, attempt: 2, headBranch: null, pullRequests: [] });
    await expectAnswer(await deliver("workflow_run", rerun, { bindings }), 202, { outcome: "queued" });
    expect((await runsOf(repo.id)).map((r) => [r.run_attempt, r.pull_requests])).toEqual([
      [1, [7, 12]],
      [2, []],
    ]);
    expect(queue.messages[1]).toMatchObject({ runAttempt: 2, headBranch: null, pullRequests: [] });
  });

  it("is 202 ignored, with the delivery recorded, when no active installation covers the repository", async () => {
    const { repo, spec } = await linkedRepo();
    const { queue, bindings } = fakeQueue();
    const stranger = repoSpec(uniqueOwner(), "not-installed");
    const suspendedSpec = installationSpec();
    const suspendedRepo = repoSpec(uniqueOwner(), "suspended");
    await installed([suspendedRepo], suspendedSpec);
    await deliver(
      "installation",
      installationEvent("suspend", { ...suspendedSpec, suspendedAt: "2026-11-03T00:00:00Z" }),
    );
    const cases: [number, RepoSpec][] = [
      [spec.id, stranger], // not linked at all
      [githubId(), repo], // another installation than the one that covers it
      [suspendedSpec.id, suspendedRepo], // suspended
    ];
    for (const [installationId, target] of cases) {
      const deliveryId = crypto.randomUUID();
      await expectAnswer(
        await deliver("workflow_run", workflowRunEvent(installationId, target), { deliveryId, bindings }),
        202,
        {
          outcome: "ignored",
          queued: false,
        },
      );
      expect(await deliveryRow(deliveryId)).toMatchObject({ outcome: "ignored" });
      expect(await runsOf(target.id)).toEqual([]);
    }
    expect(queue.messages).toEqual([]);
  });

  it("when the queue refuses the message: 503, both rows undone, and GitHub's redelivery then goes through", async () => {
    const { repo, spec } = await linkedRepo();
    const deliveryId = crypto.randomUUID();
    const payload = workflowRunEvent(spec.id, repo);
    const res = await deliver("workflow_run", payload, { deliveryId, bindings: fakeQueue(true).bindings });
    await expectError(res, 503, "service_unavailable");
    expect(res.headers.get("Retry-After")).toEqual(expect.any(String));
    expect(await deliveryRow(deliveryId)).toBeNull();
    expect(await runsOf(repo.id)).toEqual([]);
    // Without the binding at all: the same, before anything is written.
    const unbound = await deliver("workflow_run", payload, {
      deliveryId,
      bindings: { ...env, GITHUB_QUEUE: undefined },
    });
    await expectError(unbound, 503, "service_unavailable");
    expect(await deliveryRow(deliveryId)).toBeNull();

    const { queue, bindings } = fakeQueue();
    await expectAnswer(await deliver("workflow_run", payload, { deliveryId, bindings }), 202, { outcome: "queued" });
    expect(await runsOf(repo.id)).toHaveLength(1);
    expect(queue.messages).toHaveLength(1);
  });

  it("concurrent copies, and concurrent deliveries of one run attempt, queue it once", async () => {
    const { repo, spec } = await linkedRepo();
    const { queue, bindings } = fakeQueue();
    const deliveryId = crypto.randomUUID();
    const payload = workflowRunEvent(spec.id, repo);
    const copies = await Promise.all(
      Array.from({ length: 5 }, () => deliver("workflow_run", payload, { deliveryId, bindings })),
    );
    const outcomes = (await Promise.all(copies.map((r) => r.json<Answer>()))).map((b) => b.outcome).sort();
    expect(outcomes).toEqual(["duplicate", "duplicate", "duplicate", "duplicate", "queued"]);

    const other = workflowRunEvent(spec.id, repo);
    const distinct = await Promise.all(Array.from({ length: 4 }, () => deliver("workflow_run", other, { bindings })));
    const distinctOutcomes = (await Promise.all(distinct.map((r) => r.json<Answer>()))).map((b) => b.outcome).sort();
    expect(distinctOutcomes).toEqual(["ignored", "ignored", "ignored", "queued"]);
    expect(await runsOf(repo.id)).toHaveLength(2);
    expect(queue.messages).toHaveLength(2);
  });

  it("through the Worker's own GITHUB_QUEUE binding the message is sent and the run recorded", async () => {
    const { repo, spec } = await linkedRepo();
    const res = await deliver("workflow_run", workflowRunEvent(spec.id, repo));
    const answer = await expectAnswer(res, 202, { outcome: "queued" });
    // The queue's consumer may already be working on it: only its existence is ours to check.
    expect((await runsOf(repo.id)).map((r) => r.id)).toEqual([answer.recordId]);
  });
});

describe("the hourly github-upkeep job", () => {
  it("forgets deliveries after 30 days and finished runs after 90, as of the scheduled time", async () => {
    const T = Date.UTC(2002, 5, 1, 5, 0);
    const day = 86_400_000;
    const db = testDb();
    const at = (ms: number) => new Date(ms).toISOString();
    const deliveries = { old: crypto.randomUUID(), cutoff: crypto.randomUUID(), young: crypto.randomUUID() };
    for (const [id, received] of [
      [deliveries.old, T - 31 * day],
      [deliveries.cutoff, T - 30 * day],
      [deliveries.young, T - 29 * day],
    ] as const) {
      await db.execute(sql`insert into github_webhook_deliveries (delivery_id, event, action, outcome, received_at)
        values (${id}::uuid, 'workflow_run', 'completed', 'queued', ${at(received)}::timestamptz)`);
    }
    const [repo] = await db.insert(repos).values({ owner: uniqueOwner(), name: "upkeep" }).returning();
    const run = async (label: string, status: string, completedAt: number | null, createdAt = T - 400 * day) => {
      await db.execute(sql`insert into github_workflow_runs (repo_id, installation_id, workflow_run_id, run_attempt,
          head_sha, status, created_at, updated_at, completed_at)
        values (${repo.id}::uuid, 1, ${githubId()}, 1, ${"d".repeat(40)}, ${status}, ${at(createdAt)}::timestamptz,
          ${at(completedAt ?? createdAt)}::timestamptz, ${completedAt === null ? null : at(completedAt)}::timestamptz)
        returning id`);
      return label;
    };
    await run("completed-old", "completed", T - 91 * day);
    await run("completed-young", "completed", T - 89 * day);
    await run("dead-old", "dead_lettered", T - 100 * day);
    await run("skipped-old", "skipped", T - 95 * day);
    await run("queued-ancient", "queued", null);
    await run("processing-ancient", "processing", null);

    vi.spyOn(console, "log").mockImplementation(() => {});
    const controller = createScheduledController({ cron: "0 * * * *", scheduledTime: T });
    await worker.scheduled(controller, env);

    const left = await db.execute<{ delivery_id: string }>(sql`select delivery_id from github_webhook_deliveries
      where delivery_id in (${deliveries.old}::uuid, ${deliveries.cutoff}::uuid, ${deliveries.young}::uuid)`);
    expect(left.rows.map((r) => r.delivery_id).sort()).toEqual([deliveries.cutoff, deliveries.young].sort());
    const runs = await db.execute<{ status: string; completed: boolean }>(
      sql`select status, completed_at is not null as completed from github_workflow_runs where repo_id = ${repo.id}::uuid
        order by status`,
    );
    expect(runs.rows).toEqual([
      { status: "completed", completed: true },
      { status: "processing", completed: false },
      { status: "queued", completed: false },
    ]);
    const ledger = await db.execute<{ outcome: string; counts: Record<string, number> }>(sql`
      select outcome, counts from job_runs where job = 'github-upkeep' and scheduled_at = ${at(T)}::timestamptz`);
    expect(ledger.rows).toHaveLength(1);
    expect(ledger.rows[0].outcome).toBe("succeeded");
    expect(ledger.rows[0].counts.deliveries).toBeGreaterThanOrEqual(1);
    expect(ledger.rows[0].counts.workflowRuns).toBeGreaterThanOrEqual(3);

    // Again for the same time: the ledger refuses a second run; a later hour finds nothing more of these.
    await worker.scheduled(createScheduledController({ cron: "0 * * * *", scheduledTime: T + 3_600_000 }), env);
    expect(
      (await db.execute(sql`select 1 from github_workflow_runs where repo_id = ${repo.id}::uuid`)).rows,
    ).toHaveLength(3);
    await db.execute(sql`delete from repos where id = ${repo.id}::uuid`);
  });
});

describe("the API document", () => {
  it("documents the webhook like ingestion: GitHub's signature scheme, the answer, every 4xx in the Error shape", async () => {
    const res = await exports.default.fetch("http://worker/api/openapi.json");
    const doc = await res.json<{
      paths: Record<
        string,
        Record<
          string,
          { security: unknown; responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }
        >
      >;
      components: { securitySchemes: Record<string, { type: string; name?: string }> };
    }>();
    const operation = doc.paths["/webhooks/github"]?.post;
    expect(operation?.security).toEqual([{ githubSignature: [] }]);
    expect(doc.components.securitySchemes.githubSignature).toMatchObject({
      type: "apiKey",
      name: "X-Hub-Signature-256",
    });
    for (const [status, response] of Object.entries(operation?.responses ?? {})) {
      const ref = response.content?.["application/json"]?.schema.$ref;
      if (status.startsWith("4")) expect(ref, status).toBe("#/components/schemas/Error");
      if (status.startsWith("2")) expect(ref, status).toBe("#/components/schemas/GithubWebhookAnswer");
    }
  });
});
