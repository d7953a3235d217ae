import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findOrCreateRepo, withWorkerDb } from "../../tools/db/create-repo.ts";
import { CreateUserError, createUserWithToken, parseCreateUserArgs } from "../../tools/db/create-user.ts";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { migratedDatabase } from "./db-support.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await migratedDatabase();
}, 60_000);
afterAll(() => database.drop());

describe("npm run user:create", () => {
  it("makes a user with a token stored only as its SHA-256, and a role on an existing repository", async () => {
    const repo = await withWorkerDb(database.backend, (db) => findOrCreateRepo(db, "acme", "api"));
    const made = await createUserWithToken(database.backend, {
      login: "ada",
      platformAdmin: true,
      repo: "acme/api",
      role: "member",
      days: 2,
    });
    expect(made.token).toMatch(/^ap_[A-Za-z0-9_-]{43}$/);
    const { rows } = await database.backend.pool.query(
      `select u.github_login, case when u.is_platform_admin then 'yes' else 'no' end as platform_admin, s.session_token, r.role::text as role
       from users u join sessions s on s.user_id = u.id join user_repo_roles r on r.user_id = u.id
       where u.id = $1`,
      [made.user.id],
    );
    expect(rows).toEqual([
      {
        github_login: "ada",
        platform_admin: "yes",
        session_token: createHash("sha256").update(made.token).digest("hex"),
        role: "member",
      },
    ]);
    expect(made.repoId).toBe(repo.found.id);
    // --github-id links the person to the GitHub App's installations (README, GitHub App).
    const linked = await createUserWithToken(database.backend, { login: "grace", githubId: "583231" });
    const github = await database.backend.pool.query("select github_id from users where id = $1", [linked.user.id]);
    expect(github.rows).toEqual([{ github_id: "583231" }]);
    await expect(createUserWithToken(database.backend, { login: "bob", repo: "acme/missing" })).rejects.toThrow(
      CreateUserError,
    );
  });

  it("parses its flags with commander: usage errors exit 2, --help 0", () => {
    expect(parseCreateUserArgs(["--login", "ada", "--role", "read_only", "--repo", "a/b", "--days", "3"])).toEqual({
      login: "ada",
      role: "read_only",
      repo: "a/b",
      days: 3,
    });
    const quiet = { write: () => true };
    const [out, err] = [process.stdout.write, process.stderr.write];
    process.stdout.write = quiet.write as typeof process.stdout.write;
    process.stderr.write = quiet.write as typeof process.stderr.write;
    try {
      expect(parseCreateUserArgs([])).toBe(2);
      expect(parseCreateUserArgs(["--login", "x", "--role", "owner"])).toBe(2);
      expect(parseCreateUserArgs(["--login", "x", "--days", "400"])).toBe(2);
      for (const bad of ["0", "-1", "12ab", "9007199254740993", "1".repeat(20)]) {
        expect(parseCreateUserArgs(["--login", "x", "--github-id", bad])).toBe(2);
      }
      expect(parseCreateUserArgs(["--login", "x", "--github-id", "583231"])).toEqual({
        login: "x",
        githubId: "583231",
      });
      expect(parseCreateUserArgs(["--help"])).toBe(0);
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
    }
  });
});
