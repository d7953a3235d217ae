import { env, exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { expect } from "vitest";
import { createApp } from "../../src/app";
import { createDb } from "../../src/db/client";
import { repos } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { keyringFor } from "../../src/lib/keyring";
import type { ServiceContext } from "../../src/services/context";
import { createSecret } from "../../src/services/secrets";

/** Direct database access for setting up and checking rows (the same client the Worker uses). */
export function testDb(bindings: Cloudflare.Env = env) {
  const config = loadConfig(bindings);
  return createDb({ ...config, DATABASE_URL: config.DATABASE_URL as string });
}

export function serviceContext(now = () => new Date()): ServiceContext {
  return { db: testDb(), now };
}

export const keyring = () => keyringFor(env.HMAC_KEK as string);

let counter = 0;
/** A repository of this test's own, with one signing secret. */
export async function repoWithSecret(name = "ingest") {
  const db = testDb();
  counter += 1;
  const [repo] = await db
    .insert(repos)
    .values({ owner: `test-${crypto.randomUUID().slice(0, 8)}`, name: `${name}-${counter}` })
    .returning();
  const { secret, plaintext } = await createSecret(serviceContext(), await keyring(), { repoId: repo.id });
  return { repoId: repo.id, secretId: secret.id, keyId: secret.keyId, secret: plaintext };
}

const encoder = new TextEncoder();

async function hmac(key: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, message));
}

const toHex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));

/** anchorpipe v1: lowercase hex HMAC-SHA256 of the body, keyed by the secret's UTF-8 bytes. */
export async function signV1(body: string | Uint8Array, secret: string): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  return toHex(await hmac(encoder.encode(secret), bytes));
}

/** Standard Webhooks v2: `v1,<base64>` over `{id}.{timestamp}.{body}`, keyed by the decoded whsec_ bytes. */
export async function signV2(
  body: string | Uint8Array,
  secret: string,
  id: string,
  timestamp: number,
): Promise<string> {
  const key = fromBase64(secret.replace(/^whsec_/, ""));
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const message = new Uint8Array(prefix.length + bytes.length);
  message.set(prefix);
  message.set(bytes, prefix.length);
  return `v1,${toBase64(await hmac(key, message))}`;
}

export interface UploadOptions {
  scheme?: "v1" | "v2";
  secret: string;
  repoId: string;
  webhookId?: string;
  timestamp?: number;
  contentType?: string;
  headers?: Record<string, string>;
  /** Send these bytes instead of the UTF-8 of body (for invalid-encoding tests); signed as sent. */
  rawBody?: Uint8Array;
  bindings?: Cloudflare.Env;
}

/** Signs and posts an upload to the Worker, as the uploader does. */
export async function upload(body: unknown, options: UploadOptions): Promise<Response> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const bytes = options.rawBody ?? encoder.encode(text);
  const headers: Record<string, string> = {
    Authorization: `Bearer ${options.repoId}`,
    "Content-Type": options.contentType ?? "application/json",
  };
  if ((options.scheme ?? "v2") === "v2") {
    const id = options.webhookId ?? `msg_${crypto.randomUUID()}`;
    const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
    headers["webhook-id"] = id;
    headers["webhook-timestamp"] = String(timestamp);
    headers["webhook-signature"] = await signV2(bytes, options.secret, id, timestamp);
  } else {
    headers["X-FR-Sig"] = await signV1(bytes, options.secret);
  }
  const init = { method: "POST", headers: { ...headers, ...options.headers }, body: bytes };
  if (!options.bindings) return exports.default.fetch("http://worker/api/ingestion", init);
  const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
  return createApp().fetch(new Request("http://worker/api/ingestion", init), options.bindings, ctx);
}

export function payload(repoId: string, overrides: Record<string, unknown> = {}, tests: object[] = sampleTests(3)) {
  return {
    repo_id: repoId,
    commit_sha: "a".repeat(40),
    run_id: `run-${crypto.randomUUID().slice(0, 8)}`,
    framework: "vitest",
    branch: "main",
    tests,
    ...overrides,
  };
}

export function sampleTests(n: number, startedAt = new Date().toISOString()) {
  return Array.from({ length: n }, (_, i) => ({
    path: `src/module${i % 5}.test.ts`,
    name: `case ${i}`,
    status: i % 10 === 3 ? "fail" : i % 10 === 7 ? "skip" : "pass",
    startedAt,
    durationMs: 10 + i,
    ...(i % 10 === 3 ? { failureDetails: `AssertionError: expected ${i} to be ${i + 1}` } : {}),
  }));
}

/** Row counts a user would check: everything an upload for this repo can write. */
export async function rowCounts(repoId: string) {
  const db = testDb();
  const result = await db.execute<Record<string, number>>(sql`
    select
      (select count(*)::int from ingestions where repo_id = ${repoId}) as ingestions,
      (select count(*)::int from test_cases where repo_id = ${repoId}) as test_cases,
      (select count(*)::int from test_runs where repo_id = ${repoId}) as test_runs,
      (select count(*)::int from telemetry_events where repo_id = ${repoId}) as telemetry,
      (select count(*)::int from audit_logs where subject_id = ${repoId} and action <> 'hmac_secret_created') as audit`);
  return result.rows[0];
}

export const NOTHING_STORED = { ingestions: 0, test_cases: 0, test_runs: 0, telemetry: 0 };

/**
 * Database requests made by the Worker for one call, counted by the gateway under an application name of
 * the call's own (`application_name` in the connection string; the user stays the Worker's).
 */
export async function countingBindings(): Promise<{ bindings: Cloudflare.Env; requests: () => Promise<number> }> {
  const label = `count_${crypto.randomUUID().replace(/-/g, "")}`;
  const url = new URL(env.DATABASE_URL as string);
  url.searchParams.set("application_name", label);
  const bindings = { ...env, DATABASE_URL: url.toString() };
  return {
    bindings,
    requests: async () => {
      const stats = await (await fetch(`${env.GATEWAY_URL}/stats`)).json<{
        byApplication: Record<string, { requests: number }>;
      }>();
      return stats.byApplication[label]?.requests ?? 0;
    },
  };
}

/** A digest of every row an upload for this repository can write or change. */
export async function repoDigest(repoId: string): Promise<string> {
  const rowsOf = (table: string, column: string) =>
    sql.raw(`coalesce((select string_agg(t::text, '|' order by t::text) from ${table} t where ${column} = `);
  const result = await testDb().execute<{ digest: string }>(sql`
    select md5(
      ${rowsOf("ingestions", "repo_id")}${repoId}::uuid), '') ||
      ${rowsOf("test_cases", "repo_id")}${repoId}::uuid), '') ||
      ${rowsOf("test_runs", "repo_id")}${repoId}::uuid), '') ||
      ${rowsOf("telemetry_events", "repo_id")}${repoId}::uuid), '') ||
      ${rowsOf("audit_logs", "subject_id")}${repoId}), '') ||
      ${rowsOf("auth_failure_tallies", "subject_id")}${repoId}), '') ||
      ${rowsOf("hmac_secrets", "repo_id")}${repoId}::uuid), '')
    ) as digest`);
  return result.rows[0].digest;
}

type Repo = Awaited<ReturnType<typeof repoWithSecret>>;

/** Posts a signed upload; asserts no 5xx, the error envelope on 4xx, and no change on 4xx. */
export async function expectHandled(repo: Repo, body: unknown, scheme: "v1" | "v2" = "v2") {
  const before = await repoDigest(repo.repoId);
  const res = await upload(body, { ...repo, scheme });
  const text = await res.text();
  expect(res.status, text).toBeLessThan(500);
  if (res.status >= 400) {
    const envelope = JSON.parse(text) as { error: { code: string; message: string; requestId: string } };
    expect(envelope.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    expect(await repoDigest(repo.repoId)).toBe(before);
  }
  return res.status;
}
