/**
 * `anchorpipe quarantine` and `anchorpipe test` without a service: the decision read from real report
 * files (test/fixtures), the list's renderings, and the CLI against a closed local port. Against the real
 * Worker: uploader-e2e.test.ts.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { constants, tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fetchQuarantine,
  QuarantineFetchError,
  type QuarantineList,
  quarantineEndpoint,
  renderQuarantine,
} from "../../tools/uploader/quarantine.ts";
import { signedReadHeaders, signV2 } from "../../tools/uploader/sign.ts";
import {
  type CommandExit,
  decide,
  describeDecision,
  exitCodeOf,
  failuresInReports,
  type ReportFailures,
} from "../../tools/uploader/tolerate.ts";
import { freePort } from "../../tools/wrangler-dev.ts";
import { runCli, startCli } from "./uploader-cli.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const JUNIT = "test/fixtures/junit";
const REPO_ID = "6b1f3c9e-1111-4222-8333-944445555666";
const KEY = randomBytes(32);
const SECRET = `whsec_${KEY.toString("base64")}`;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

/** A quarantine list as the service sends it. */
function list(tests: Array<{ path: string; name: string; framework?: string; reason?: string }>): QuarantineList {
  return {
    repoId: REPO_ID,
    tests: tests.map((t, i) => ({
      testId: `00000000-0000-4000-8000-00000000000${i}`,
      path: t.path,
      name: t.name,
      suite: t.path,
      framework: t.framework ?? "junit",
      class: "flaky",
      score: 64,
      reason: t.reason ?? "passed and failed on the same commit 3 times in 10 runs",
      owners: ["@acme/qa"],
    })),
  };
}

const failed: CommandExit = { code: 1, signal: null };
const decideFor = (failures: ReportFailures, quarantine: QuarantineList | null, exit = failed, reportFiles = 1) =>
  decide({ exit, commandExitCode: exitCodeOf(exit, constants.signals), quarantine, reportFiles, failures });

// ---------------------------------------------------------------------------------------------------------

describe("the failing tests of a command's reports", () => {
  it("are read with the service's parsers, under the identity the upload stores them with", async () => {
    const read = await failuresInReports([`${JUNIT}/pytest.xml`], ROOT);
    expect(read.results).toBe(10);
    expect(read.unreadable).toEqual([]);
    expect(read.failures).toEqual([
      {
        path: "tests.test_lib",
        name: "test_always_fail",
        framework: "junit",
        suite: "tests.test_lib",
        source: `${JUNIT}/pytest.xml`,
      },
      {
        path: "tests.test_lib",
        name: "test_error",
        framework: "junit",
        suite: "tests.test_lib",
        source: `${JUNIT}/pytest.xml`,
      },
    ]);
  });

  it("take the framework the upload declares: --framework, or unknown for reports of several frameworks", async () => {
    const pytest = await failuresInReports([`${JUNIT}/pytest.xml`], ROOT, { framework: "pytest" });
    expect(pytest.failures.map((f) => f.framework)).toEqual(["pytest", "pytest"]);
    const mixed = await failuresInReports(
      ["test/fixtures/jest-json/jest-testresultsprocessor-books.json", `${JUNIT}/pytest.xml`],
      ROOT,
    );
    expect(mixed.results).toBe(16);
    expect(mixed.failures.map((f) => `${f.name} ${f.framework}`)).toEqual([
      "test_always_fail unknown",
      "test_error unknown",
    ]);
  });

  it("do not count a test that failed and passed on a retry, and count a test failing in two reports once", async () => {
    const recovered = await failuresInReports([`${JUNIT}/surefire-flaky.xml`], ROOT);
    expect(recovered).toEqual({ failures: [], results: 1, unreadable: [] });
    const rerun = await failuresInReports([`${JUNIT}/surefire-rerun.xml`], ROOT);
    expect(rerun.failures.map((f) => `${f.path}::${f.name}`)).toEqual(["io.olamy.AlwaysFailTest::testApp"]);

    const dir = await mkdtemp(path.join(tmpdir(), "anchorpipe-tolerate-"));
    try {
      await copyFile(path.join(ROOT, JUNIT, "pytest.xml"), path.join(dir, "a.xml"));
      await copyFile(path.join(ROOT, JUNIT, "pytest.xml"), path.join(dir, "b.xml"));
      const twice = await failuresInReports([path.join(dir, "a.xml"), path.join(dir, "b.xml")], dir);
      expect(twice.results).toBe(20);
      expect(twice.failures.map((f) => `${f.name} in ${f.source}`)).toEqual([
        "test_always_fail in a.xml",
        "test_error in a.xml",
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("name a report that cannot be read", async () => {
    const read = await failuresInReports([`${JUNIT}/malformed-truncated.xml`], ROOT);
    expect(read.failures).toEqual([]);
    expect(read.unreadable).toEqual([
      { source: `${JUNIT}/malformed-truncated.xml`, message: expect.stringMatching(/line 5, column 14/) },
    ]);
  });
});

describe("the decision", () => {
  let pytest: ReportFailures;
  let recovered: ReportFailures;
  let unreadable: ReportFailures;
  beforeAll(async () => {
    pytest = await failuresInReports([`${JUNIT}/pytest.xml`], ROOT);
    recovered = await failuresInReports([`${JUNIT}/surefire-flaky.xml`], ROOT);
    unreadable = await failuresInReports([`${JUNIT}/malformed-truncated.xml`], ROOT);
  });
  const context = { command: "pytest --junitxml=reports/junit.xml", patterns: ["reports/*.xml"] };

  it("exits 0 when every failing test is quarantined, naming each tolerated failure and why", () => {
    const decision = decideFor(
      pytest,
      list([
        { path: "tests.test_lib", name: "test_always_fail", reason: "failed then passed on retry in 4 of 20 runs" },
        { path: "tests.test_lib", name: "test_error" },
        { path: "elsewhere", name: "test_other" },
      ]),
    );
    expect(decision).toMatchObject({ exitCode: 0, verdict: "all-quarantined", commandExitCode: 1 });
    expect(decision.tolerated.map((t) => [t.failure.name, t.matchedBy])).toEqual([
      ["test_always_fail", "path, name and framework"],
      ["test_error", "path, name and framework"],
    ]);
    expect(describeDecision(decision, context)).toEqual([
      "`pytest --junitxml=reports/junit.xml` exited with 1; every failing test is quarantined, so exiting 0. Tolerated failures:",
      `  tolerated: tests.test_lib::test_always_fail (junit, in ${JUNIT}/pytest.xml): flaky, score 64, failed then passed on retry in 4 of 20 runs`,
      `  tolerated: tests.test_lib::test_error (junit, in ${JUNIT}/pytest.xml): flaky, score 64, passed and failed on the same commit 3 times in 10 runs`,
    ]);
  });

  it("keeps the command's exit code when one failing test is not quarantined, and says which", () => {
    const decision = decideFor(pytest, list([{ path: "tests.test_lib", name: "test_always_fail" }]));
    expect(decision).toMatchObject({ exitCode: 1, verdict: "not-quarantined" });
    expect(decision.notQuarantined.map((f) => f.name)).toEqual(["test_error"]);
    const lines = describeDecision(decision, context);
    expect(lines[0]).toBe(
      "`pytest --junitxml=reports/junit.xml` exited with 1; 1 failing test is not quarantined, exiting 1:",
    );
    expect(lines).toContain(`  failed: tests.test_lib::test_error (junit, in ${JUNIT}/pytest.xml)`);
  });

  it("matches by path and name when the list has the test under another framework", () => {
    const decision = decideFor(
      pytest,
      list([
        { path: "tests.test_lib", name: "test_always_fail", framework: "pytest" },
        { path: "tests.test_lib", name: "test_error", framework: "junit" },
      ]),
    );
    expect(decision.exitCode).toBe(0);
    expect(decision.tolerated.map((t) => t.matchedBy)).toEqual(["path and name", "path, name and framework"]);
    expect(describeDecision(decision, context)[1]).toContain("(quarantined as framework pytest)");
  });

  it("never matches on a name alone", () => {
    const decision = decideFor(
      pytest,
      list([
        { path: "tests.other", name: "test_always_fail" },
        { path: "tests.other", name: "test_error" },
      ]),
    );
    expect(decision).toMatchObject({ exitCode: 1, verdict: "not-quarantined" });
  });

  it("keeps the command's exit code without a list, without reports, with unreadable ones, or with no failure in them", () => {
    const everything = list([
      { path: "tests.test_lib", name: "test_always_fail" },
      { path: "tests.test_lib", name: "test_error" },
    ]);
    const exit2 = { code: 2, signal: null };
    expect(decideFor(pytest, null, exit2)).toMatchObject({ exitCode: 2, verdict: "no-list" });
    expect(decideFor(pytest, everything, exit2, 0)).toMatchObject({ exitCode: 2, verdict: "no-reports" });
    expect(decideFor(unreadable, everything, exit2)).toMatchObject({ exitCode: 2, verdict: "unreadable-reports" });
    const crash = decideFor(recovered, everything, exit2);
    expect(crash).toMatchObject({ exitCode: 2, verdict: "no-failures" });
    expect(describeDecision(crash, context)).toEqual([
      "`pytest --junitxml=reports/junit.xml` exited with 2 but its reports show no failing test (a crash, a compile error, a failing hook?); exiting 2",
    ]);
    expect(describeDecision(decideFor(pytest, null, exit2), context)).toEqual([
      "`pytest --junitxml=reports/junit.xml` exited with 2; the quarantine list could not be fetched, so nothing is tolerated: exiting 2",
    ]);
  });

  it("exits 0 when the command passed, and with 128 + the signal when a signal ended it", () => {
    const everything = list([{ path: "tests.test_lib", name: "test_always_fail" }]);
    expect(decideFor(pytest, everything, { code: 0, signal: null })).toMatchObject({ exitCode: 0, verdict: "passed" });
    const killed = decideFor(pytest, everything, { code: null, signal: "SIGTERM" });
    expect(killed).toMatchObject({ exitCode: 128 + constants.signals.SIGTERM, verdict: "interrupted" });
    const missing = decideFor(pytest, everything, { code: 127, signal: null, error: "ENOENT" });
    expect(missing).toMatchObject({ exitCode: 127, verdict: "not-run" });
  });
});

describe("the quarantine list for a runner", () => {
  const body = JSON.stringify(
    list([
      { path: "tests.b", name: "test_two" },
      { path: "tests.a", name: "test_one" },
      { path: "tests.a", name: "test_one", framework: "pytest" },
      { path: "pkg/odd", name: "line\nbreak \\ slash" },
    ]),
  );
  const fetched = { body, list: JSON.parse(body) as QuarantineList };

  it("json is the service's body as sent; list is sorted, unique <path>::<name>; names are sorted and unique", () => {
    expect(renderQuarantine(fetched, "json")).toBe(`${body}\n`);
    expect(renderQuarantine(fetched, "list")).toBe(
      "pkg/odd::line\\nbreak \\\\ slash\ntests.a::test_one\ntests.b::test_two\n",
    );
    expect(renderQuarantine(fetched, "names")).toBe("line\\nbreak \\\\ slash\ntest_one\ntest_two\n");
    const empty = { body: `{"repoId":"${REPO_ID}","tests":[]}`, list: { repoId: REPO_ID, tests: [] } };
    expect(renderQuarantine(empty, "list")).toBe("");
    expect(renderQuarantine(empty, "json")).toBe(`${empty.body}\n`);
  });

  it("is read at /api/repos/:repoId/quarantine under the base URL, also when ANCHORPIPE_URL is the ingestion URL", () => {
    const expected = `https://ci.example.com/anchorpipe/api/repos/${REPO_ID}/quarantine`;
    expect(quarantineEndpoint("https://ci.example.com/anchorpipe/", REPO_ID)).toBe(expected);
    expect(quarantineEndpoint("https://ci.example.com/anchorpipe/api/ingestion", REPO_ID)).toBe(expected);
  });

  it("is asked for with the v2 signature over the empty body and the repo id as bearer", () => {
    const headers = signedReadHeaders({ secret: SECRET, repoId: REPO_ID, id: "msg_1", timestamp: 1_700_000_000 });
    expect(headers).toEqual({
      authorization: `Bearer ${REPO_ID}`,
      "webhook-id": "msg_1",
      "webhook-timestamp": "1700000000",
      "webhook-signature": signV2(KEY, "msg_1", 1_700_000_000, ""),
    });
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("against a closed port (nothing listens)", () => {
  let url = "";
  let dir = "";
  let env: Record<string, string> = {};
  beforeAll(async () => {
    url = `http://127.0.0.1:${await freePort()}`;
    dir = await mkdtemp(path.join(tmpdir(), "anchorpipe-quarantine-"));
    env = { ANCHORPIPE_URL: url, ANCHORPIPE_REPO_ID: REPO_ID, ANCHORPIPE_SECRET: SECRET };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("fetchQuarantine fails as unavailable after its retries; a v1 secret is refused before anything is sent", async () => {
    const sleeps: number[] = [];
    const error = await fetchQuarantine({
      url,
      repoId: REPO_ID,
      secret: SECRET,
      env: {},
      retries: 2,
      retryDelayMs: 10,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuarantineFetchError);
    expect((error as QuarantineFetchError).unavailable).toBe(true);
    expect((error as Error).message).toMatch(/could not reach .*\/quarantine: ECONNREFUSED/);
    expect(sleeps).toHaveLength(2);
    await expect(fetchQuarantine({ url, repoId: REPO_ID, secret: "plain-v1-secret", env: {} })).rejects.toThrow(
      /not a v2 secret .*read with a v2 secret only/,
    );
  });

  it("anchorpipe quarantine exits 2 and says why", async () => {
    const run = await runCli(["quarantine", "--retries", "0"], env, dir);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(
      /anchorpipe: error: could not reach http:\/\/127\.0\.0\.1:\d+\/api\/repos\/.*\/quarantine/,
    );
    expect(run.stderr).not.toContain(SECRET.slice("whsec_".length));
  });

  const writeReport = (from: string, code: number) =>
    `require("fs").mkdirSync("reports",{recursive:true});` +
    `require("fs").copyFileSync(${JSON.stringify(path.join(ROOT, JUNIT, from))},"reports/junit.xml");` +
    `process.exit(${code})`;
  const testArgs = ["test", "--reports", "reports/*.xml", "--commit", COMMIT, "--run-id", "r1", "--retries", "0"];

  it("anchorpipe test falls back to the command's exit code and says the service is unreachable", async () => {
    const work = path.join(dir, "fallback");
    await mkdir(work);
    const run = await runCli([...testArgs, "--", process.execPath, "-e", writeReport("pytest.xml", 3)], env, work);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toContain("anchorpipe: warning: could not fetch the quarantine list (could not reach");
    expect(run.stderr).toContain("the quarantine list could not be fetched, so nothing is tolerated: exiting 3");
    expect(run.stderr).toContain("the upload failed (unavailable)");
  });

  it("anchorpipe test passes a command's success through, and 127 when the command does not exist", async () => {
    const work = path.join(dir, "pass");
    await mkdir(work);
    const passed = await runCli([...testArgs, "--", process.execPath, "-e", writeReport("pytest.xml", 0)], env, work);
    expect(passed.code, passed.stderr).toBe(0);
    const missing = await runCli([...testArgs, "--", "anchorpipe-no-such-command"], env, work);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("anchorpipe: error: could not run anchorpipe-no-such-command: ENOENT");
  });

  it("anchorpipe test runs the command without a shell and without the signing secret in its environment", async () => {
    const work = path.join(dir, "environment");
    await mkdir(work);
    const script =
      "console.log(JSON.stringify({ secret: process.env.ANCHORPIPE_SECRET ?? null, repo: process.env.ANCHORPIPE_REPO_ID, args: process.argv.slice(1) }))";
    const run = await runCli([...testArgs, "--", process.execPath, "-e", script, "$HOME", "a b"], env, work);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ secret: null, repo: REPO_ID, args: ["$HOME", "a b"] });
  });

  it("anchorpipe test ignores reports older than the command", async () => {
    const work = path.join(dir, "stale");
    await mkdir(path.join(work, "reports"), { recursive: true });
    await copyFile(path.join(ROOT, JUNIT, "pytest.xml"), path.join(work, "reports", "old.xml"));
    const run = await runCli([...testArgs, "--", process.execPath, "-e", "process.exit(1)"], env, work);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("1 report file matching the patterns predates the command: ignored");
    expect(run.stderr).toContain("the command wrote no report matching reports/*.xml: nothing to upload");
  });

  it("anchorpipe test passes SIGTERM on to the command and keeps the status it ends with", async () => {
    const work = path.join(dir, "signal");
    await mkdir(work);
    const script =
      'process.on("SIGTERM", () => process.exit(7)); setInterval(() => {}, 1000); console.log("command is running")';
    const running = startCli([...testArgs, "--", process.execPath, "-e", script], env, work);
    await running.printed("command is running");
    running.child.kill("SIGTERM");
    const run = await running.done;
    expect(run.code, run.stderr).toBe(7);
    expect(run.stderr).toContain("exited with 7");
  });

  it("needs a command and --reports", async () => {
    const noReports = await runCli(["test", "--", "true"], env, dir);
    expect(noReports.code).toBe(1);
    expect(noReports.stderr).toContain("required option '--reports <glob>' not specified");
    const noCommand = await runCli(["test", "--reports", "x.xml"], env, dir);
    expect(noCommand.code).toBe(1);
    expect(noCommand.stderr).toContain("missing required argument 'command'");
  });
});
