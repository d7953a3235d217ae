import { env } from "cloudflare:workers";
import { eq, sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hmacSecrets, repositoryConfigs } from "../../src/db/schema";
import { signedRequestFrom, verifySignature } from "../../src/ingestion/signature";
import { revokeSecret, rotateSecret } from "../../src/services/secrets";
import {
  keyring,
  NOTHING_STORED,
  payload,
  repoWithSecret,
  rowCounts,
  serviceContext,
  signV1,
  signV2,
  testDb,
  upload,
} from "./ingestion-support";

const UNAUTHORIZED_BODY = { code: "unauthorized", message: "Missing or invalid signature." };

async function expectUnauthorized(res: Response) {
  expect(res.status).toBe(401);
  const body = await res.json<{ error: Record<string, unknown> }>();
  expect(body.error).toMatchObject(UNAUTHORIZED_BODY);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "requestId"]);
}

/**
 * Every failed authentication of a repository, one entry per failure, sorted: the tallies count each one;
 * the audit log holds one hmac_auth_failure row per repository, reason and minute (checked here too).
 */
async function failureReasons(repoId: string): Promise<string[]> {
  const db = testDb();
  const tallies = await db.execute<{ reason: string; failures: number }>(
    sql`select reason, failures from auth_failure_tallies where subject_id = ${repoId}`,
  );
  const audited = await db.execute<{ reason: string; window: string }>(
    sql`select metadata->>'reason' as reason, metadata->>'windowStart' as window from audit_logs
        where action = 'hmac_auth_failure' and subject_id = ${repoId}`,
  );
  expect(audited.rows.length).toBe(tallies.rows.length);
  return tallies.rows.flatMap((row) => Array<string>(row.failures).fill(row.reason)).sort();
}

describe("known test vectors", () => {
  it("v2: the Standard Webhooks specification's example", async () => {
    const body = new TextEncoder().encode('{"test": 2432232314}');
    const headers = new Headers({
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
    const secret = { id: "s", keyId: "k", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" };
    const request = signedRequestFrom(headers)!;
    const at = new Date(1614265330 * 1000);
    expect(await verifySignature(body, request, [secret], at, { allowV1: true })).toEqual({ ok: true, secret });
    // Any one valid entry in a list passes; none valid fails.
    const listed = signedRequestFrom(
      new Headers({ ...Object.fromEntries(headers), "webhook-signature": `v1,bm9wZQ== ${request.signature} v2,xyz` }),
    )!;
    expect((await verifySignature(body, listed, [secret], at, { allowV1: true })).ok).toBe(true);
    for (const skew of [-300, 300]) {
      const within = new Date((1614265330 + skew) * 1000);
      expect((await verifySignature(body, request, [secret], within, { allowV1: true })).ok).toBe(true);
    }
    for (const skew of [-301, 301]) {
      expect(
        await verifySignature(body, request, [secret], new Date((1614265330 + skew) * 1000), { allowV1: true }),
      ).toEqual({ ok: false, reason: "timestamp_outside_window" });
    }
  });

  it("v1: HMAC-SHA256 test case 2 of RFC 4231", async () => {
    const body = new TextEncoder().encode("what do ya want for nothing?");
    const expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const request = signedRequestFrom(new Headers({ "X-FR-Sig": expected }))!;
    const secret = { id: "s", keyId: "k", secret: "Jefe" };
    expect(await verifySignature(body, request, [secret], new Date(), { allowV1: true })).toEqual({ ok: true, secret });
    expect(await signV1(body, "Jefe")).toBe(expected);
    expect(await verifySignature(body, request, [secret], new Date(), { allowV1: false })).toEqual({
      ok: false,
      reason: "scheme_not_allowed",
    });
  });
});

describe("rejected signatures: 401, one body, nothing stored, an audit row", () => {
  it("accepts the untouched request (control)", async () => {
    const repo = await repoWithSecret();
    for (const scheme of ["v1", "v2"] as const) {
      const res = await upload(payload(repo.repoId), { ...repo, scheme });
      expect(res.status, await res.clone().text()).toBe(200);
    }
  });

  it("single-bit flips in the body, the signature and the timestamp", async () => {
    const repo = await repoWithSecret();
    const body = JSON.stringify(payload(repo.repoId));
    const id = `msg_${crypto.randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000);
    const signature = await signV2(body, repo.secret, id, ts);
    const headers = (sig: string, stamp = ts) => ({
      "webhook-id": id,
      "webhook-timestamp": String(stamp),
      "webhook-signature": sig,
    });

    const bytes = new TextEncoder().encode(body);
    for (const position of [0, 10, bytes.length - 1]) {
      const flipped = bytes.slice();
      flipped[position] ^= 0x01;
      await expectUnauthorized(await upload(body, { ...repo, rawBody: flipped, headers: headers(signature) }));
    }
    const raw = Uint8Array.from(atob(signature.slice(3)), (c) => c.charCodeAt(0));
    raw[5] ^= 0x80;
    await expectUnauthorized(
      await upload(body, { ...repo, headers: headers(`v1,${btoa(String.fromCharCode(...raw))}`) }),
    );
    await expectUnauthorized(await upload(body, { ...repo, headers: headers(signature, ts ^ 1) }));
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
    expect(await failureReasons(repo.repoId)).toHaveLength(5);
  });

  it("v1 flips, truncated, empty and malformed signatures", async () => {
    const repo = await repoWithSecret();
    const body = JSON.stringify(payload(repo.repoId));
    const good = await signV1(body, repo.secret);
    const flip = (good[0] === "0" ? "1" : "0") + good.slice(1);
    for (const sig of [
      flip,
      good.slice(0, 63),
      good.slice(0, 32),
      "",
      "zz".repeat(32),
      good.toUpperCase().replace(/./, "G"),
    ]) {
      await expectUnauthorized(await upload(body, { ...repo, scheme: "v1", headers: { "X-FR-Sig": sig } }));
    }
    for (const sig of ["", "v1,", "v1", "v1,@@@", "v2,abc", " "]) {
      await expectUnauthorized(await upload(body, { ...repo, headers: { "webhook-signature": sig } }));
    }
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("a signature from another repository's secret", async () => {
    const repo = await repoWithSecret();
    const other = await repoWithSecret();
    for (const scheme of ["v1", "v2"] as const) {
      await expectUnauthorized(await upload(payload(repo.repoId), { ...repo, secret: other.secret, scheme }));
    }
    expect(await failureReasons(repo.repoId)).toEqual(["signature_mismatch", "signature_mismatch"]);
  });

  it("an unknown repository answers exactly like a bad signature", async () => {
    const unknown = crypto.randomUUID();
    const repo = await repoWithSecret();
    await expectUnauthorized(await upload(payload(unknown), { repoId: unknown, secret: repo.secret }));
    expect(await failureReasons(unknown)).toEqual(["no_active_secret"]);
  });

  it("missing or malformed Authorization", async () => {
    const repo = await repoWithSecret();
    for (const authorization of ["", "Bearer", "Bearer not-a-uuid", `Basic ${repo.repoId}`]) {
      await expectUnauthorized(
        await upload(payload(repo.repoId), { ...repo, headers: { Authorization: authorization } }),
      );
    }
    const unsigned = await upload(payload(repo.repoId), { ...repo, scheme: "v1", headers: { "X-FR-Sig": "" } });
    await expectUnauthorized(unsigned);
  });

  it("a revoked secret and an expired one", async () => {
    const repo = await repoWithSecret();
    await revokeSecret(serviceContext(), { repoId: repo.repoId, secretId: repo.secretId });
    await expectUnauthorized(await upload(payload(repo.repoId), repo));

    const expiring = await repoWithSecret();
    await testDb()
      .update(hmacSecrets)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(hmacSecrets.id, expiring.secretId));
    await expectUnauthorized(await upload(payload(expiring.repoId), expiring));
    expect(await rowCounts(expiring.repoId)).toMatchObject(NOTHING_STORED);
  });

  it("a rotated secret works inside the overlap and not after it", async () => {
    const repo = await repoWithSecret();
    const { plaintext: fresh } = await rotateSecret(serviceContext(), await keyring(), {
      repoId: repo.repoId,
      secretId: repo.secretId,
      overlapHours: 24,
    });
    expect((await upload(payload(repo.repoId), repo)).status).toBe(200);
    expect((await upload(payload(repo.repoId), { ...repo, secret: fresh })).status).toBe(200);
    // The overlap ends.
    await testDb()
      .update(hmacSecrets)
      .set({ expiresAt: new Date(Date.now() - 1) })
      .where(eq(hmacSecrets.id, repo.secretId));
    await expectUnauthorized(await upload(payload(repo.repoId), repo));
    expect((await upload(payload(repo.repoId), { ...repo, secret: fresh })).status).toBe(200);
  });

  // The exact edges (±300 s pass, ±301 s fail) are checked with an injected clock in "known test vectors";
  // through HTTP the margins are wide enough that no delay of a loaded machine can cross them.
  it("a replayed v2 request outside the 300 s window, in either direction", async () => {
    const repo = await repoWithSecret();
    const body = payload(repo.repoId);
    const now = () => Math.floor(Date.now() / 1000);
    expect((await upload(body, { ...repo, timestamp: now() - 120 })).status).toBe(200);
    await expectUnauthorized(await upload(body, { ...repo, timestamp: now() - 3600 }));
    await expectUnauthorized(await upload(body, { ...repo, timestamp: now() + 3600 }));
    await expectUnauthorized(await upload(body, { ...repo, headers: { "webhook-timestamp": "soon" } }));
    expect(await failureReasons(repo.repoId)).toEqual([
      "timestamp_invalid",
      "timestamp_outside_window",
      "timestamp_outside_window",
    ]);
  });

  it("v1 is refused where the repository requires timestamped signatures", async () => {
    const repo = await repoWithSecret();
    await testDb().insert(repositoryConfigs).values({ repoId: repo.repoId, requireTimestampedSignature: true });
    await expectUnauthorized(await upload(payload(repo.repoId), { ...repo, scheme: "v1" }));
    expect((await upload(payload(repo.repoId), { ...repo, scheme: "v2" })).status).toBe(200);
    expect(await failureReasons(repo.repoId)).toEqual(["scheme_not_allowed"]);
  });

  it("success records hmac_auth_success and the secret's last use", async () => {
    const repo = await repoWithSecret();
    expect((await upload(payload(repo.repoId), repo)).status).toBe(200);
    const [secret] = await testDb().select().from(hmacSecrets).where(eq(hmacSecrets.id, repo.secretId));
    expect(secret.lastUsedAt).toBeInstanceOf(Date);
    const actions = await testDb().execute<{ action: string; metadata: string }>(
      sql`select action, metadata::text from audit_logs where subject_id = ${repo.repoId} order by action`,
    );
    expect(actions.rows.map((r) => r.action)).toEqual([
      "hmac_auth_success",
      "hmac_secret_created",
      "ingestion_accepted",
    ]);
    expect(JSON.stringify(actions.rows)).not.toContain(repo.secret.slice(6));
  });
});

describe("properties", () => {
  it("no input makes it answer 5xx", async () => {
    const repo = await repoWithSecret();
    const arbitraryHeaders = fc.record(
      {
        authorization: fc.oneof(fc.string(), fc.constant(`Bearer ${repo.repoId}`)),
        "content-type": fc.oneof(fc.constant("application/json"), fc.string()),
        "webhook-id": fc.string({ maxLength: 300 }),
        "webhook-timestamp": fc.oneof(fc.string(), fc.integer().map(String)),
        "webhook-signature": fc.string(),
        "x-fr-sig": fc.string(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        arbitraryHeaders,
        fc.oneof(fc.string(), fc.json(), fc.uint8Array({ maxLength: 512 })),
        async (headers, body) => {
          const clean = Object.fromEntries(
            Object.entries(headers).filter(([, v]) => /^[\t\x20-\x7e]*$/.test(v)),
          ) as Record<string, string>;
          const res = await upload("", {
            ...repo,
            rawBody: typeof body === "string" ? new TextEncoder().encode(body) : body,
            headers: clean,
          });
          await res.arrayBuffer();
          expect(res.status).toBeLessThan(500);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a valid signature over a changed body never passes", async () => {
    const repo = await repoWithSecret();
    await fc.assert(
      fc.asyncProperty(fc.json(), fc.json(), async (original, changed) => {
        fc.pre(original !== changed);
        const id = `msg_${crypto.randomUUID()}`;
        const ts = Math.floor(Date.now() / 1000);
        const signature = await signV2(original, repo.secret, id, ts);
        const res = await upload(changed, {
          ...repo,
          headers: { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": signature },
        });
        await res.arrayBuffer();
        expect(res.status).toBe(401);
        const v1 = await upload(changed, {
          ...repo,
          scheme: "v1",
          headers: { "X-FR-Sig": await signV1(original, repo.secret) },
        });
        await v1.arrayBuffer();
        expect(v1.status).toBe(401);
      }),
      { numRuns: 40 },
    );
    expect(await rowCounts(repo.repoId)).toMatchObject(NOTHING_STORED);
  });
});

void env;
