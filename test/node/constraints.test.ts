import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase } from "./db-support.ts";

/**
 * Values come back as PostgreSQL's text (the backend pool is the gateway's, which never parses).
 *
 * For each table: a valid row goes in, then each kind of invalid row fails
 * with the SQLSTATE PostgreSQL gives for it — 23505 duplicate key, 23503
 * dangling reference, 23514 failed check, 22P02 bad enum value, 23502
 * missing required value.
 */
let database: TestDatabase;
let seq = 0;
const unique = (prefix: string) => `${prefix}-${++seq}-${randomUUID().slice(0, 8)}`;
const sha = () => randomUUID().replace(/-/g, "").padEnd(40, "0");

type Row = Record<string, unknown>;

async function insert(table: string, row: Row): Promise<Row> {
  const columns = Object.keys(row);
  const { rows } = await database.backend.pool.query(
    `INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(", ")}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(", ")}) RETURNING *`,
    columns.map((c) => row[c]),
  );
  return rows[0];
}

async function failsWith(table: string, row: Row, code: string): Promise<void> {
  const error = await insert(table, row).then(
    () => undefined,
    (e: { code?: string }) => e,
  );
  expect(error, `insert into ${table} ${JSON.stringify(row)} should fail with ${code}`).toBeDefined();
  expect(error?.code).toBe(code);
}

const query = async (text: string, values: unknown[] = []) => (await database.backend.pool.query(text, values)).rows;

beforeAll(async () => {
  database = await migratedDatabase();
});
afterAll(() => database.drop());

/** A repo, a user, a test case and an ingestion to hang rows on. */
async function fixtures() {
  const repo = await insert("repos", { owner: unique("acme"), name: "api" });
  const user = await insert("users", { github_id: unique("gh"), email: `${unique("u")}@example.com` });
  const testCase = await insert("test_cases", { repo_id: repo.id, path: "src/a.test.ts", name: "adds" });
  const ingestion = await insert("ingestions", ingestionRow(repo.id as string));
  return { repo, user, testCase, ingestion };
}

function ingestionRow(repoId: string): Row {
  return {
    repo_id: repoId,
    idempotency_key: unique("key"),
    commit_sha: sha(),
    run_id: "run-1",
    framework: "junit",
    signature_scheme: "v2",
    tests_total: 3,
    tests_failed: 1,
    tests_skipped: 1,
    payload_sha256: "ab".repeat(32),
    response: JSON.stringify({ ok: true }),
  };
}

describe("constraints, table by table", () => {
  it("repos", async () => {
    const owner = unique("acme");
    await insert("repos", { owner, name: "web", gh_id: 4242 });
    await failsWith("repos", { owner, name: "web" }, "23505");
    await failsWith("repos", { owner: unique("o"), name: "x", gh_id: 4242 }, "23505");
    await failsWith("repos", { owner: unique("o"), name: "x", visibility: "secret" }, "22P02");
    await failsWith("repos", { owner: unique("o") }, "23502");
  });

  it("users", async () => {
    const email = `${unique("Ada")}@Example.com`;
    await insert("users", { email, github_id: unique("gh") });
    await failsWith("users", { email: email.toLowerCase() }, "23505"); // case-insensitive
    await insert("users", { email: null });
    await insert("users", { email: null }); // many users without an email
  });

  it("test_cases", async () => {
    const { repo } = await fixtures();
    const row = { repo_id: repo.id, path: "src/b.test.ts", name: "works", framework: "vitest" };
    await insert("test_cases", row);
    await failsWith("test_cases", row, "23505");
    await failsWith("test_cases", { ...row, repo_id: randomUUID() }, "23503");
    await failsWith("test_cases", { ...row, name: "x".repeat(1001) }, "23514");
    await failsWith("test_cases", { ...row, path: "p".repeat(1001) }, "23514");
    const fresh = await insert("test_cases", { ...row, name: "defaults" });
    expect(fresh).toMatchObject({ framework: "vitest", tags: "{}" });
  });

  it("ingestions", async () => {
    const { repo } = await fixtures();
    const row = ingestionRow(repo.id as string);
    await insert("ingestions", row);
    await failsWith("ingestions", row, "23505");
    await failsWith("ingestions", { ...row, idempotency_key: unique("k"), repo_id: randomUUID() }, "23503");
    await failsWith("ingestions", { ...row, idempotency_key: unique("k"), commit_sha: "ABC" }, "23514");
    await failsWith("ingestions", { ...row, idempotency_key: unique("k"), tests_failed: 5 }, "23514");
    await failsWith("ingestions", { ...row, idempotency_key: unique("k"), response: null }, "23502");
  });

  it("test_runs", async () => {
    const { repo, testCase, ingestion } = await fixtures();
    const row = {
      repo_id: repo.id,
      test_case_id: testCase.id,
      ingestion_id: ingestion.id,
      commit_sha: sha(),
      run_id: "run-1",
      status: "pass",
      started_at: new Date().toISOString(),
      duration_ms: 12,
    };
    const stored = await insert("test_runs", row);
    await failsWith("test_runs", { ...row, id: stored.id, created_at: stored.created_at }, "23505");
    await failsWith("test_runs", { ...row, test_case_id: randomUUID() }, "23503");
    await failsWith("test_runs", { ...row, ingestion_id: randomUUID() }, "23503");
    await failsWith("test_runs", { ...row, duration_ms: -1 }, "23514");
    await failsWith("test_runs", { ...row, rerun_count: -1 }, "23514");
    await failsWith("test_runs", { ...row, commit_sha: sha().toUpperCase().replace(/[0-9]/g, "A") }, "23514");
    await failsWith("test_runs", { ...row, status: "error" }, "22P02");
    await failsWith("test_runs", { ...row, started_at: null }, "23502");
  });

  it("flake_scores", async () => {
    const { repo, testCase } = await fixtures();
    const row = {
      test_case_id: testCase.id,
      repo_id: repo.id,
      runs_considered: 50,
      pass_rate: 0.9,
      volatility: 0.2,
      recency_fail: 0.1,
      clustering: 0.3,
      score: 72,
      class: "flaky",
    };
    await insert("flake_scores", row);
    await failsWith("flake_scores", row, "23505");
    const other = await insert("test_cases", { repo_id: repo.id, path: "x", name: unique("n") });
    await failsWith("flake_scores", { ...row, test_case_id: other.id, score: 101 }, "23514");
    await failsWith("flake_scores", { ...row, test_case_id: other.id, score: -1 }, "23514");
    await failsWith("flake_scores", { ...row, test_case_id: other.id, class: "wobbly" }, "22P02");
    await failsWith("flake_scores", { ...row, test_case_id: randomUUID() }, "23503");
  });

  it("owner_maps", async () => {
    const { repo } = await fixtures();
    const row = { repo_id: repo.id, pattern: "src/**", owner: "@acme/core", source: "CODEOWNERS", line: 3 };
    await insert("owner_maps", row);
    await failsWith("owner_maps", { ...row, source: "guess" }, "22P02");
    await failsWith("owner_maps", { ...row, repo_id: randomUUID() }, "23503");
    await failsWith("owner_maps", { ...row, confidence_score: 1.5 }, "23514");
  });

  it("telemetry_events", async () => {
    const { repo, user } = await fixtures();
    await insert("telemetry_events", { repo_id: repo.id, user_id: user.id, event_type: "upload", event_data: "{}" });
    await failsWith("telemetry_events", { repo_id: randomUUID(), event_type: "upload" }, "23503");
    await failsWith("telemetry_events", { repo_id: repo.id }, "23502");
  });

  it("repository_configs", async () => {
    const { repo } = await fixtures();
    const stored = await insert("repository_configs", { repo_id: repo.id });
    expect(stored).toMatchObject({ retention_days: "30", scoring_threshold: "60", require_timestamped_signature: "f" });
    await failsWith("repository_configs", { repo_id: repo.id }, "23505");
    const { repo: other } = await fixtures();
    await failsWith("repository_configs", { repo_id: other.id, retention_days: 0 }, "23514");
    await failsWith("repository_configs", { repo_id: other.id, retention_days: 3651 }, "23514");
    await failsWith("repository_configs", { repo_id: other.id, scoring_threshold: 101 }, "23514");
    await failsWith("repository_configs", { repo_id: randomUUID() }, "23503");
  });

  it("notifications", async () => {
    const { repo, user } = await fixtures();
    const row = { repo_id: repo.id, user_id: user.id, type: "flake_detected", title: "t", message: "m" };
    expect(await insert("notifications", row)).toMatchObject({ severity: "info", read: "f" });
    await insert("notifications", { ...row, user_id: null });
    await failsWith("notifications", { ...row, type: "gossip" }, "22P02");
    await failsWith("notifications", { ...row, severity: "meh" }, "22P02");
    await failsWith("notifications", { ...row, user_id: randomUUID() }, "23503");
  });

  it("accounts, sessions, verification_tokens", async () => {
    const { user } = await fixtures();
    const account = { user_id: user.id, provider: "github", provider_account_id: unique("acct") };
    await insert("accounts", account);
    await failsWith("accounts", account, "23505");
    await failsWith("accounts", { ...account, provider_account_id: unique("a"), user_id: randomUUID() }, "23503");

    const session = { user_id: user.id, session_token: "f".repeat(64), expires: new Date().toISOString() };
    await insert("sessions", session);
    await failsWith("sessions", session, "23505");
    await failsWith("sessions", { ...session, session_token: unique("s"), user_id: randomUUID() }, "23503");

    const token = { identifier: "a@example.com", token: unique("t"), expires: new Date().toISOString() };
    await insert("verification_tokens", token);
    await failsWith("verification_tokens", token, "23505");
    await failsWith("verification_tokens", { identifier: "x" }, "23502");
  });

  it("user_repo_roles and role_audit_logs", async () => {
    const { repo, user } = await fixtures();
    const row = { user_id: user.id, repo_id: repo.id, role: "admin" };
    await insert("user_repo_roles", row);
    await failsWith("user_repo_roles", row, "23505");
    await failsWith("user_repo_roles", { ...row, role: "owner" }, "22P02");
    await failsWith("user_repo_roles", { ...row, repo_id: randomUUID() }, "23503");

    const audit = {
      actor_id: user.id,
      target_user_id: user.id,
      repo_id: repo.id,
      action: "assigned",
      new_role: "admin",
    };
    await insert("role_audit_logs", audit);
    await failsWith("role_audit_logs", { ...audit, action: "promoted" }, "23514");
    await failsWith("role_audit_logs", { ...audit, new_role: "owner" }, "22P02");
    await failsWith("role_audit_logs", { ...audit, actor_id: randomUUID() }, "23503");
  });

  it("audit_logs and hmac_secrets", async () => {
    const { repo, user } = await fixtures();
    const audit = {
      actor_id: user.id,
      action: "login_success",
      subject: "user",
      subject_id: String(user.id),
      ip_address: "203.0.113.7",
    };
    await insert("audit_logs", audit);
    await failsWith("audit_logs", { ...audit, action: "hacked" }, "22P02");
    await failsWith("audit_logs", { ...audit, subject: "planet" }, "22P02");
    await failsWith("audit_logs", { ...audit, ip_address: "not-an-ip" }, "22P02");
    await failsWith("audit_logs", { ...audit, actor_id: randomUUID() }, "23503");

    const secret = {
      repo_id: repo.id,
      name: "ci",
      key_id: "k1",
      secret_ciphertext: "v1:abc",
      kek_version: 1,
      secret_sha256: "cd".repeat(32),
    };
    const stored = await insert("hmac_secrets", secret);
    expect(stored).toMatchObject({ active: "t", revoked: "f" });
    await insert("hmac_secrets", { ...secret, key_id: "k2", rotated_from: stored.id });
    await failsWith("hmac_secrets", { ...secret, rotated_from: randomUUID() }, "23503");
    await failsWith("hmac_secrets", { ...secret, kek_version: null }, "23502");
  });

  it("data_subject_requests and their events", async () => {
    const { user } = await fixtures();
    const request = await insert("data_subject_requests", { user_id: user.id, type: "export" });
    expect(request.status).toBe("pending");
    const [{ days }] = await query(
      "select extract(day from due_at - requested_at)::int as days from data_subject_requests where id = $1",
      [request.id],
    );
    expect(days).toBe("30");
    await failsWith("data_subject_requests", { user_id: user.id, type: "erase" }, "22P02");
    await failsWith("data_subject_requests", { user_id: randomUUID(), type: "export" }, "23503");
    await insert("data_subject_request_events", { request_id: request.id, status: "processing" });
    await failsWith("data_subject_request_events", { request_id: randomUUID(), status: "processing" }, "23503");
    await failsWith("data_subject_request_events", { request_id: request.id, status: "done" }, "22P02");
  });

  it("github_app_installations", async () => {
    const row = {
      installation_id: 1000 + seq++,
      account_id: 77,
      account_type: "Organization",
      account_login: "acme",
      target_type: "Organization",
      repository_ids: "{1,2,3}",
    };
    const stored = await insert("github_app_installations", row);
    expect(stored).toMatchObject({ permissions: "{}", events: "{}" });
    await failsWith("github_app_installations", row, "23505");
    await failsWith("github_app_installations", { ...row, installation_id: 99999, account_login: null }, "23502");
  });
});

describe("deletes", () => {
  it("deleting a repo removes its test cases, runs, scores and everything else it owns", async () => {
    const { repo, testCase, ingestion, user } = await fixtures();
    await insert("test_runs", {
      repo_id: repo.id,
      test_case_id: testCase.id,
      ingestion_id: ingestion.id,
      commit_sha: sha(),
      run_id: "r",
      status: "fail",
      started_at: new Date().toISOString(),
    });
    await insert("flake_scores", {
      test_case_id: testCase.id,
      repo_id: repo.id,
      runs_considered: 1,
      pass_rate: 0,
      volatility: 0,
      recency_fail: 1,
      clustering: 0,
      score: 10,
    });
    await insert("user_repo_roles", { user_id: user.id, repo_id: repo.id, role: "member" });
    await insert("role_audit_logs", { actor_id: user.id, repo_id: repo.id, action: "assigned", new_role: "member" });
    await insert("telemetry_events", { repo_id: repo.id, event_type: "upload" });

    await query("delete from repos where id = $1", [repo.id]);
    for (const table of ["test_cases", "test_runs", "flake_scores", "ingestions", "user_repo_roles"]) {
      expect(await query(`select count(*)::int as n from ${table} where repo_id = $1`, [repo.id]), table).toEqual([
        { n: "0" },
      ]);
    }
    // History and telemetry outlive the repo, with the reference cleared.
    expect(await query("select repo_id from role_audit_logs where actor_id = $1", [user.id])).toEqual([
      { repo_id: null },
    ]);
    expect(
      await query("select count(*)::int as n from telemetry_events where repo_id is null and event_type = 'upload'"),
    ).not.toEqual([{ n: "0" }]);
  });

  it("deleting a user keeps the role and audit history with a null actor", async () => {
    const { repo, user } = await fixtures();
    const { user: admin } = await fixtures();
    await insert("user_repo_roles", { user_id: user.id, repo_id: repo.id, role: "member", assigned_by: admin.id });
    const roleLog = await insert("role_audit_logs", {
      actor_id: admin.id,
      target_user_id: user.id,
      repo_id: repo.id,
      action: "assigned",
      new_role: "member",
    });
    const audit = await insert("audit_logs", {
      actor_id: admin.id,
      action: "role_assigned",
      subject: "user",
      subject_id: String(user.id),
    });
    await insert("sessions", { user_id: admin.id, session_token: unique("tok"), expires: new Date().toISOString() });

    await query("delete from users where id = $1", [admin.id]);
    expect(
      await query("select actor_id, target_user_id, action from role_audit_logs where id = $1", [roleLog.id]),
    ).toEqual([{ actor_id: null, target_user_id: user.id, action: "assigned" }]);
    expect(await query("select actor_id, action from audit_logs where id = $1", [audit.id])).toEqual([
      { actor_id: null, action: "role_assigned" },
    ]);
    expect(await query("select assigned_by from user_repo_roles where user_id = $1", [user.id])).toEqual([
      { assigned_by: null },
    ]);
    expect(await query("select count(*)::int as n from sessions where user_id = $1", [admin.id])).toEqual([{ n: "0" }]);

    // The target's deletion removes their role but keeps the log of it.
    await query("delete from users where id = $1", [user.id]);
    expect(await query("select target_user_id from role_audit_logs where id = $1", [roleLog.id])).toEqual([
      { target_user_id: null },
    ]);
    expect(await query("select count(*)::int as n from user_repo_roles where user_id = $1", [user.id])).toEqual([
      { n: "0" },
    ]);
  });

  it("deleting a data subject request takes its timeline with it", async () => {
    const { user } = await fixtures();
    const request = await insert("data_subject_requests", { user_id: user.id, type: "deletion" });
    await insert("data_subject_request_events", { request_id: request.id, status: "pending" });
    await query("delete from users where id = $1", [user.id]);
    expect(
      await query("select count(*)::int as n from data_subject_request_events where request_id = $1", [request.id]),
    ).toEqual([{ n: "0" }]);
  });
});
