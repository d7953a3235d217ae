import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase } from "./db-support.ts";
import { APPEND_ONLY } from "./schema-spec.ts";

/**
 * Runs statements as a role inside a transaction that is always rolled back,
 * so each check starts from the same data. Returns the rows, or the error.
 */
let database: TestDatabase;
async function as(
  role: string | null,
  statements: string[],
): Promise<{ rows?: unknown[]; error?: { code: string; message: string } }> {
  const client = await database.backend.pool.connect();
  try {
    await client.query("BEGIN");
    if (role) await client.query(`SET LOCAL ROLE ${role}`);
    let rows: unknown[] = [];
    for (const statement of statements) rows = (await client.query(statement)).rows;
    return { rows };
  } catch (error) {
    return { error: error as { code: string; message: string } };
  } finally {
    await client.query("ROLLBACK").catch(() => {});
    client.release();
  }
}

const one = async (text: string) => (await database.backend.pool.query(text)).rows[0];

let repoId: string;
let userId: string;

beforeAll(async () => {
  database = await migratedDatabase();
  repoId = (await one("insert into repos (owner, name) values ('acme', 'priv') returning id")).id;
  userId = (await one("insert into users (email) values ('ada@example.com') returning id")).id;
  await database.backend.pool.query(
    `insert into audit_logs (actor_id, action, subject, subject_id, created_at) values
       ($1, 'login_success', 'user', $2, now()), ($1, 'login_success', 'user', $2, now() - interval '400 days')`,
    [userId, userId],
  );
  await database.backend.pool.query(
    `insert into role_audit_logs (actor_id, target_user_id, repo_id, action, new_role) values ($1, $1, $2, 'assigned', 'admin')`,
    [userId, repoId],
  );
  const request = await one(
    `insert into data_subject_requests (user_id, type) values ('${userId}', 'export') returning id`,
  );
  await database.backend.pool.query(
    `insert into data_subject_request_events (request_id, status) values ($1, 'pending')`,
    [request.id],
  );
});
afterAll(() => database.drop());

describe("append-only history", () => {
  describe.each(APPEND_ONLY)("%s", (table) => {
    it.each([null, "anchorpipe_migrator", "anchorpipe_app"])(
      "rejects UPDATE, DELETE and TRUNCATE as %s",
      async (role) => {
        for (const statement of [
          `UPDATE ${table} SET created_at = now()`,
          `DELETE FROM ${table}`,
          `TRUNCATE ${table}`,
        ]) {
          const { error } = await as(role, [statement]);
          expect(error?.code, `${role ?? "superuser"}: ${statement}`).toBe("42501");
          // The superuser and the owner (the migrator) are stopped by the trigger, the app role already by
          // its missing privilege.
          expect(error?.message).toMatch(role === "anchorpipe_app" ? /permission denied/ : /is append-only/);
        }
      },
    );

    it("accepts INSERT and SELECT as the application", async () => {
      const { error } = await as("anchorpipe_app", [`SELECT count(*) FROM ${table}`]);
      expect(error).toBeUndefined();
    });
  });

  it("the retention purge deletes only rows older than its cut-off, and only through its function", async () => {
    const { rows, error } = await as("anchorpipe_app", [
      "SELECT anchorpipe_purge_append_only('audit_logs', now() - interval '365 days') AS purged",
    ]);
    expect(error).toBeUndefined();
    expect(rows).toEqual([{ purged: "1" }]);
    const refused = await as("anchorpipe_app", ["SELECT anchorpipe_purge_append_only('repos', now())"]);
    expect(refused.error?.message).toMatch(/not an append-only table/);
    // Setting the purge marker by hand does not help the application: it has no DELETE right.
    const forged = await as("anchorpipe_app", [
      "SELECT set_config('anchorpipe.purge_before', now()::text, true)",
      "DELETE FROM audit_logs",
    ]);
    expect(forged.error?.code).toBe("42501");
  });
});

describe("least privilege", () => {
  it("anchorpipe_app reads and writes application tables", async () => {
    const { rows, error } = await as("anchorpipe_app", [
      "INSERT INTO repos (owner, name) VALUES ('acme', 'by-app')",
      "UPDATE repos SET default_branch = 'trunk' WHERE name = 'by-app'",
      "INSERT INTO audit_logs (action, subject) VALUES ('other', 'system')",
      "SELECT count(*)::int AS n FROM repos WHERE default_branch = 'trunk'",
    ]);
    expect(error).toBeUndefined();
    expect(rows).toEqual([{ n: "1" }]);
    expect((await as("anchorpipe_app", ["DELETE FROM repos WHERE name = 'priv'"])).error).toBeUndefined();
  });

  it.each([
    "CREATE TABLE sneaky (n int)",
    "ALTER TABLE repos ADD COLUMN sneaky int",
    "DROP TABLE repos",
    "CREATE INDEX sneaky ON repos (name)",
    "TRUNCATE repos",
  ])("anchorpipe_app cannot run DDL: %s", async (statement) => {
    const { error } = await as("anchorpipe_app", [statement]);
    expect(error?.code).toMatch(/^42501$|^42P01$/);
    expect(error?.code).toBe("42501");
  });

  it("anchorpipe_app cannot touch the migration bookkeeping", async () => {
    expect((await as("anchorpipe_app", ["SELECT * FROM anchorpipe_migrations"])).error?.code).toBe("42501");
  });

  it("anchorpipe_app may create partitions only through the upkeep function", async () => {
    const { rows, error } = await as("anchorpipe_app", [
      "SELECT count(*) AS n FROM anchorpipe_ensure_test_run_partitions(0, '2031-05-01')",
    ]);
    expect(error).toBeUndefined();
    expect(rows).toEqual([{ n: "1" }]);
    expect(
      (
        await as("anchorpipe_app", [
          "CREATE TABLE test_runs_p2031_06 PARTITION OF test_runs FOR VALUES FROM ('2031-06-01') TO ('2031-07-01')",
        ])
      ).error?.code,
    ).toBe("42501");
  });

  it.each([
    "INSERT INTO repos (owner, name) VALUES ('x', 'y')",
    "UPDATE repos SET name = 'z'",
    "DELETE FROM users",
    "INSERT INTO audit_logs (action, subject) VALUES ('other', 'system')",
    "SELECT anchorpipe_ensure_test_run_partitions(0, '2031-05-01')",
  ])("anchorpipe_readonly cannot write: %s", async (statement) => {
    expect((await as("anchorpipe_readonly", [statement])).error?.code).toBe("42501");
  });

  it("anchorpipe_readonly reads every application table", async () => {
    const tables = (
      await database.backend.pool.query(
        "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r','p') and relname <> 'anchorpipe_migrations'",
      )
    ).rows.map((r) => r.relname as string);
    const { error } = await as(
      "anchorpipe_readonly",
      tables.map((t) => `SELECT count(*) FROM ${t}`),
    );
    expect(error).toBeUndefined();
  });

  it("anchorpipe_migrator owns every object of the schema", async () => {
    const { rows } = await database.backend.pool.query(
      `select distinct pg_get_userbyid(relowner)::text as owner from pg_class where relnamespace = 'public'::regnamespace
       union select distinct pg_get_userbyid(proowner)::text from pg_proc where pronamespace = 'public'::regnamespace`,
    );
    expect(rows).toEqual([{ owner: "anchorpipe_migrator" }]);
  });

  it("the three roles exist without login rights", async () => {
    const { rows } = await database.backend.pool.query(
      "select rolname, rolcanlogin from pg_roles where rolname in ('anchorpipe_app', 'anchorpipe_migrator', 'anchorpipe_readonly') order by rolname",
    );
    expect(rows).toEqual([
      { rolname: "anchorpipe_app", rolcanlogin: "f" },
      { rolname: "anchorpipe_migrator", rolcanlogin: "f" },
      { rolname: "anchorpipe_readonly", rolcanlogin: "f" },
    ]);
  });
});
