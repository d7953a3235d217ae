import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { TestDatabase } from "../../tools/db/test-database.ts";
import { describeJobs, main, runJobByHand, UnknownJobError } from "../../tools/jobs/run.ts";
import { migratedDatabase } from "./db-support.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await migratedDatabase();
}, 60_000);
afterAll(() => database.drop());

/** The job's ledger rows; counts as stored (a jsonb object), read as text since the pool may not parse jsonb. */
const runs = async (job: string) => {
  const { rows } = await database.backend.pool.query(
    `select to_char(scheduled_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as at, outcome,
       jsonb_typeof(counts) as counts_type, counts::text as counts, error
     from job_runs where job = $1 order by started_at, created_at`,
    [job],
  );
  return rows.map(({ counts, ...row }) => ({ ...row, counts: counts === null ? null : JSON.parse(counts) }));
};

describe("npm run job", () => {
  it("lists every job with its crons", () => {
    const listed = describeJobs();
    for (const name of ["db-health", "partition-upkeep", "incomplete-upload-cleanup", "expired-sessions"]) {
      expect(listed).toMatch(new RegExp(`^${name} +"`, "m"));
    }
    expect(listed).toMatch(/^flake-recompute +"17 3 \* \* \*"$/m);
  });

  it("runs a job through the ledger at --at; the same time again is refused, as a trigger's would be", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const at = new Date("2026-11-30T10:00:00Z");
    const first = await runJobByHand({ name: "db-health", at, backend: database.backend });
    expect(first).toMatchObject({ job: "db-health", outcome: "succeeded" });
    const again = await runJobByHand({ name: "db-health", at, backend: database.backend });
    expect(again.outcome).toBe("skipped");
    expect(await runs("db-health")).toEqual([
      { at: "2026-11-30T10:00:00Z", outcome: "succeeded", counts_type: "object", counts: first.counts, error: null },
      {
        at: "2026-11-30T10:00:00Z",
        outcome: "skipped",
        counts_type: null,
        counts: null,
        error: expect.stringMatching(/already succeeded/),
      },
    ]);
    vi.restoreAllMocks();
  });

  it("uses --at as the cut-off: expired-sessions removes what had expired by then", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const { pool } = database.backend;
    const user = (await pool.query(`insert into users (github_login) values ('by-hand') returning id`)).rows[0].id;
    for (const [token, expires] of [
      ["early", "2026-01-01T00:00:00Z"],
      ["late", "2026-03-01T00:00:00Z"],
    ]) {
      await pool.query(`insert into sessions (user_id, session_token, expires) values ($1, $2, $3)`, [
        user,
        token,
        expires,
      ]);
    }
    const report = await runJobByHand({
      name: "expired-sessions",
      at: new Date("2026-02-01T00:00:00Z"),
      backend: database.backend,
    });
    expect(report).toMatchObject({ outcome: "succeeded", counts: { sessions: 1, verificationTokens: 0 } });
    const left = await pool.query("select session_token from sessions where user_id = $1", [user]);
    expect(left.rows).toEqual([{ session_token: "late" }]);
    vi.restoreAllMocks();
  });

  it("refuses a job it does not know; usage errors exit 2, --list and --help 0", async () => {
    await expect(runJobByHand({ name: "nope", at: new Date(), backend: database.backend })).rejects.toThrow(
      UnknownJobError,
    );
    const out = vi.spyOn(console, "log").mockImplementation(() => {});
    const err = vi.spyOn(console, "error").mockImplementation(() => {});
    const write = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      expect(await main(["--list"])).toBe(0);
      expect(out.mock.calls[0][0]).toBe(describeJobs());
      expect(await main(["nope"])).toBe(2);
      expect(await main([])).toBe(2);
      expect(await main(["db-health", "--at", "yesterday"])).toBe(2);
      expect(await main(["--help"])).toBe(0);
    } finally {
      for (const spy of [out, err, write, stdout]) spy.mockRestore();
    }
  });
});
