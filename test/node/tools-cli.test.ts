/**
 * The database tools' command lines (commander): every flag they had, the same exit codes (usage errors 2,
 * --help 0). Parsing only; what the tools do is tested in migrations, secrets, seed and schema-docs tests.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseCreateRepoArgs } from "../../tools/db/create-repo.ts";
import { parseMigrateArgs } from "../../tools/db/migrate-cli.ts";
import { parseSchemaDocsArgs } from "../../tools/db/schema-docs.ts";
import { parseSeedArgs } from "../../tools/db/seed.ts";

let stdout: string;
let stderr: string;

beforeEach(() => {
  stdout = "";
  stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("db:migrate, db:rollback, db:status", () => {
  it("reads the action, --steps and --to", () => {
    expect(parseMigrateArgs(["up"])).toEqual({ action: "up", steps: 1, to: undefined });
    expect(parseMigrateArgs(["status"])).toEqual({ action: "status", steps: 1, to: undefined });
    expect(parseMigrateArgs(["down", "--steps", "3"])).toEqual({ action: "down", steps: 3, to: undefined });
    expect(parseMigrateArgs(["down", "--to", "0"])).toEqual({ action: "down", steps: 1, to: "0" });
    expect(parseMigrateArgs(["down", "--steps=2"])).toMatchObject({ steps: 2 });
  });

  it("usage errors exit 2 and name the problem; --help exits 0", () => {
    expect(parseMigrateArgs([])).toBe(2);
    expect(stderr).toContain("missing required argument 'action'");
    expect(parseMigrateArgs(["sideways"])).toBe(2);
    expect(stderr).toContain("Allowed choices are up, down, status");
    for (const steps of ["0", "-1", "1.5", "x"]) expect(parseMigrateArgs(["down", "--steps", steps])).toBe(2);
    expect(stderr).toContain("must be a positive whole number");
    expect(parseMigrateArgs(["up", "--bogus"])).toBe(2);
    expect(parseMigrateArgs(["--help"])).toBe(0);
    expect(parseMigrateArgs(["-h"])).toBe(0);
    expect(stdout).toContain("npm run db:rollback -- --to <tag>");
  });
});

describe("repo:create", () => {
  it("reads --owner, --name and --secret-name", () => {
    expect(parseCreateRepoArgs(["--owner", "acme", "--name", "api"])).toEqual({
      owner: "acme",
      name: "api",
      secretName: undefined,
    });
    expect(parseCreateRepoArgs(["--owner=acme", "--name=api", "--secret-name", "ci"])).toMatchObject({
      secretName: "ci",
    });
  });

  it("owner and name are required (exit 2); --help exits 0", () => {
    expect(parseCreateRepoArgs(["--owner", "acme"])).toBe(2);
    expect(stderr).toContain("required option '--name <name>' not specified");
    expect(parseCreateRepoArgs([])).toBe(2);
    expect(parseCreateRepoArgs(["--owner", "a", "--name", "b", "--secret", "x"])).toBe(2);
    expect(parseCreateRepoArgs(["--help"])).toBe(0);
    expect(stdout).toContain("HMAC_KEK");
  });
});

describe("db:seed", () => {
  it("passes on only the options given, as numbers, a date and booleans", () => {
    expect(parseSeedArgs([])).toEqual({});
    expect(parseSeedArgs(["--repos", "10", "--tests", "1000", "--runs", "100", "--reset"])).toEqual({
      repos: 10,
      tests: 1000,
      runs: 100,
      reset: true,
    });
    expect(
      parseSeedArgs(["--days", "7", "--seed", "0", "--until", "2026-03-01T00:00:00Z", "--no-scores", "--no-reset"]),
    ).toEqual({ days: 7, seed: 0, until: new Date("2026-03-01T00:00:00Z"), scores: false, reset: false });
    expect(parseSeedArgs(["--scores"])).toEqual({ scores: true });
  });

  it("leaves the range checks to seed() (bad numbers reach it as NaN or out of range)", () => {
    expect(parseSeedArgs(["--repos", "many"])).toMatchObject({ repos: Number.NaN });
    expect(parseSeedArgs(["--until", "someday"])).toMatchObject({ until: new Date(Number.NaN) });
  });

  it("unknown flags exit 2; --help exits 0", () => {
    expect(parseSeedArgs(["--rows", "5"])).toBe(2);
    expect(stderr).toContain("unknown option '--rows'");
    expect(parseSeedArgs(["--help"])).toBe(0);
    expect(stdout).toContain("--no-scores");
  });
});

describe("db:docs", () => {
  it("reads --check", () => {
    expect(parseSchemaDocsArgs([])).toEqual({ check: false });
    expect(parseSchemaDocsArgs(["--check"])).toEqual({ check: true });
    expect(parseSchemaDocsArgs(["--chekc"])).toBe(2);
    expect(stderr).toContain("(Did you mean --check?)");
  });
});
