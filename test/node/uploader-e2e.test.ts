/**
 * The uploader end to end, nothing stubbed:
 *
 *   tools/uploader/cli.ts (child process) ──HTTP──▶ wrangler dev (the real Worker)
 *     ──Neon HTTP──▶ gateway (in this process) ──▶ a fresh migrated database (PGlite, or DATABASE_URL's server)
 *
 * Real JUnit reports from the corpus (test/fixtures/junit) go up, and the rows the Worker wrote are read
 * back directly from the database.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectFormat, parseReport } from "../../src/ingestion/formats/index.ts";
import { generateKek, parseKeyring } from "../../src/lib/keyring.ts";
import { createRepoWithSecret } from "../../tools/db/create-repo.ts";
import { serveLocalGateway } from "../../tools/db/local-gateway.ts";
import { migrateUp } from "../../tools/db/migrator.ts";
import { createTestDatabase, type TestDatabase } from "../../tools/db/test-database.ts";
import type { RunningGateway } from "../../tools/gateway/index.ts";
import { buildUploaderPackage } from "../../tools/uploader/build.ts";
import { freePort, startWranglerDev, type WranglerDev } from "../../tools/wrangler-dev.ts";
import { runCli as runAnchorpipe, runUploadCli } from "./uploader-cli.ts";
import { type InstalledUploader, nodeBinaries, packAndInstall } from "./uploader-package.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CORPUS = "test/fixtures/junit";
const COMMIT = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c";
const OTHER_COMMIT = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";

/** A pytest-style JUnit report of four checkout tests, the `failing` ones failed. */
function checkoutReport(failing: string[]): string {
  const names = ["test_total", "test_payment", "test_refund", "test_receipt"];
  const cases = names.map((name) =>
    failing.includes(name)
      ? `    <testcase classname="tests.checkout" name="${name}" time="0.010">\n` +
        `      <failure message="AssertionError: ${name}">assert False</failure>\n    </testcase>`
      : `    <testcase classname="tests.checkout" name="${name}" time="0.010"/>`,
  );
  return (
    `<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n  <testsuite name="pytest" tests="${names.length}" ` +
    `failures="${failing.length}" errors="0" skipped="0">\n${cases.join("\n")}\n  </testsuite>\n</testsuites>\n`
  );
}

/** The CLI as CI runs it, in a clean environment: the checkout's, or `command` (an installed bin). */
const runCli = (args: string[], env: Record<string, string>, cwd = ROOT, command?: string[]) =>
  runUploadCli(args, env, cwd, command);

// ---------------------------------------------------------------------------------------------------------

describe("uploader → wrangler dev → gateway → database", () => {
  let database: TestDatabase | undefined;
  let gateway: RunningGateway | undefined;
  let worker: WranglerDev | undefined;
  let workDir: string | undefined;
  let repoId = "";
  let secret = "";
  let kek = "";

  beforeAll(async () => {
    database = await createTestDatabase();
    await migrateUp(database.backend.pool);
    const local = await serveLocalGateway(database.backend);
    gateway = local.running;
    kek = generateKek();
    ({
      repo: { id: repoId },
      plaintext: secret,
    } = await createRepoWithSecret(database.backend, await parseKeyring(kek), { owner: "e2e", name: "uploader" }));
    workDir = await mkdtemp(path.join(tmpdir(), "anchorpipe-e2e-"));
    worker = await startWranglerDev({
      vars: {
        DATABASE_URL: local.urls.app,
        NEON_LOCAL_GATEWAY: "true",
        HMAC_KEK: kek,
        ENVIRONMENT: "development",
      },
      // Not the checkout's shared .wrangler/state (an `npm run dev` may be using it).
      persistTo: path.join(workDir, "wrangler-state"),
    });
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
    await gateway?.close();
    await database?.drop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 30_000);

  const query = async <T = Record<string, string | null>>(sql: string, params: unknown[] = []): Promise<T[]> =>
    (await (database as TestDatabase).backend.pool.query(sql, params)).rows as T[];

  /** Everything this repository has stored, as row counts. */
  const totals = async () => {
    const [row] = await query(
      `select (select count(*) from ingestions where repo_id = $1) as ingestions,
              (select count(*) from test_runs where repo_id = $1) as runs,
              (select count(*) from test_cases where repo_id = $1) as cases`,
      [repoId],
    );
    return { ingestions: Number(row!.ingestions), runs: Number(row!.runs), cases: Number(row!.cases) };
  };

  const statusCounts = async (runId: string) => {
    const rows = await query<{ status: string; n: string }>(
      "select status::text, count(*) as n from test_runs where repo_id = $1 and run_id = $2 group by status",
      [repoId, runId],
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  };

  const upload = (args: string[], env: Record<string, string> = {}, cwd?: string, command?: string[]) =>
    runCli(
      args,
      { ANCHORPIPE_URL: (worker as WranglerDev).url, ANCHORPIPE_REPO_ID: repoId, ANCHORPIPE_SECRET: secret, ...env },
      cwd,
      command,
    ).then((run) => {
      // Never printed, whatever happened.
      expect(run.stdout + run.stderr).not.toContain(secret);
      expect(run.stdout + run.stderr).not.toContain(secret.slice("whsec_".length));
      return run;
    });

  const FIRST_UPLOAD = [
    `${CORPUS}/surefire-flaky.xml`,
    `${CORPUS}/pytest.xml`,
    "--commit",
    COMMIT,
    "--run-id",
    "e2e-v2",
    "--branch",
    "main",
  ];

  it("v2 (default): a Surefire report with flaky reruns and a pytest report are stored as the files say", async () => {
    const run = await upload(FIRST_UPLOAD);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("uploading 11 results in 1 part");
    expect(run.stdout).toContain("signature v2; commit 4f1c2d3e4f5a, branch main, run e2e-v2");
    expect(run.stdout).toMatch(/part 1\/1: 11 tests parsed, 2 failed, 2 skipped, 1 flaky candidate \(ingestion /);
    expect(run.stdout).toContain("1/1 part uploaded");
    const printedId = /\(ingestion ([0-9a-f-]{36})\)/.exec(run.stdout)?.[1];

    const ingestions = await query("select * from ingestions where repo_id = $1 and run_id = 'e2e-v2'", [repoId]);
    expect(ingestions).toHaveLength(1);
    const [ingestion] = ingestions;
    expect(ingestion).toMatchObject({
      id: printedId,
      commit_sha: COMMIT,
      branch: "main",
      framework: "junit",
      signature_scheme: "v2",
      tests_total: "11",
      tests_failed: "2",
      tests_skipped: "2",
    });
    expect(ingestion!.idempotency_key).toMatch(/^ap_[0-9a-f]{64}$/);
    expect(ingestion!.completed_at).not.toBeNull();

    const runs = await query(
      `select c.path, c.name, c.framework, c.suite, r.status::text, r.rerun_count, r.duration_ms, r.failure_details,
              r.commit_sha, r.branch, r.ingestion_id
         from test_runs r join test_cases c on c.id = r.test_case_id
        where r.repo_id = $1 and r.run_id = 'e2e-v2' order by c.path, c.name`,
      [repoId],
    );
    expect(runs).toHaveLength(11);
    expect(await statusCounts("e2e-v2")).toEqual({ pass: 7, fail: 2, skip: 2 });
    for (const r of runs) {
      expect(r).toMatchObject({ framework: "junit", commit_sha: COMMIT, branch: "main", ingestion_id: printedId });
    }
    expect(runs.map((r) => `${r.path} :: ${r.name} = ${r.status}`)).toEqual([
      "custom_classname :: test_with_record_xml_attribute = pass",
      "io.olamy.FlakyTest :: testApp = pass",
      "tests.test_lib :: test_always_fail = fail",
      "tests.test_lib :: test_always_pass = pass",
      "tests.test_lib :: test_always_skip = skip",
      "tests.test_lib :: test_error = fail",
      "tests.test_lib :: test_expected_failure = skip",
      "tests.test_lib :: test_parameterized[param1] = pass",
      "tests.test_lib :: test_parameterized[param2] = pass",
      "tests.test_lib :: test_with_record_property = pass",
      "tests.test_lib :: test_with_subtests = pass",
    ]);

    // Two <flakyFailure> attempts, then a pass: a retry-recovered flake, explained by the last failed attempt.
    const flaky = runs.find((r) => r.name === "testApp")!;
    expect(flaky).toMatchObject({ suite: "io.olamy.FlakyTest", rerun_count: "2", duration_ms: "1" });
    expect(flaky.failure_details).toMatch(/^try one more time maybe\n\njunit\.framework\.AssertionFailedError: /);
    expect(runs.filter((r) => r.name !== "testApp").every((r) => r.rerun_count === "0")).toBe(true);
    expect(runs.find((r) => r.name === "test_always_fail")!.failure_details).toContain("tests/test_lib.py:25");
    expect(runs.find((r) => r.name === "test_with_subtests")!.duration_ms).toBe("5");

    const cases = await query("select path, name from test_cases where repo_id = $1", [repoId]);
    expect(cases).toHaveLength(11);
  });

  it("the same upload again (same commit and run) is reported as a duplicate and stores nothing twice", async () => {
    const before = await totals();
    expect(before).toEqual({ ingestions: 1, runs: 11, cases: 11 });
    const run = await upload(FIRST_UPLOAD);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("part 1/1: already received earlier (duplicate, nothing stored twice): 11 tests");
    expect(run.stdout).toContain("1/1 part uploaded (1 already received earlier)");
    expect(await totals()).toEqual(before);
  });

  it("v1 signing, with commit, branch and run id taken from GitHub Actions variables", async () => {
    const before = await totals();
    const run = await upload(
      [`${CORPUS}/surefire-rerun.xml`, `${CORPUS}/surefire-flaky-message.xml`, "--signature", "v1"],
      {
        GITHUB_ACTIONS: "true",
        GITHUB_SHA: OTHER_COMMIT,
        GITHUB_REF: "refs/heads/release/2.x",
        GITHUB_REF_NAME: "release/2.x",
        GITHUB_RUN_ID: "8812",
        GITHUB_RUN_ATTEMPT: "2",
      },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      "signature v1; commit aaaaaaaaaaaa, branch release/2.x, run 8812-2, via GitHub Actions",
    );
    expect(run.stdout).toMatch(/part 1\/1: 2 tests parsed, 1 failed, 0 skipped, 1 flaky candidate/);

    const [ingestion, ...more] = await query("select * from ingestions where repo_id = $1 and run_id = '8812-2'", [
      repoId,
    ]);
    expect(more).toHaveLength(0);
    expect(ingestion).toMatchObject({
      signature_scheme: "v1",
      commit_sha: OTHER_COMMIT,
      branch: "release/2.x",
      tests_total: "2",
      tests_failed: "1",
    });
    // v1 has no webhook-id: the uploader's key travels in the body.
    expect(ingestion!.idempotency_key).toMatch(/^ap_[0-9a-f]{64}$/);

    const runs = await query(
      `select c.path, c.name, r.status::text, r.rerun_count, r.duration_ms, r.failure_details
         from test_runs r join test_cases c on c.id = r.test_case_id
        where r.repo_id = $1 and r.run_id = '8812-2' order by c.path`,
      [repoId],
    );
    expect(runs).toHaveLength(2);
    // <failure> plus three <rerunFailure>: failed every time.
    expect(runs.find((r) => r.path === "io.olamy.AlwaysFailTest")).toMatchObject({
      name: "testApp",
      status: "fail",
      rerun_count: "3",
      duration_ms: "1",
    });
    expect(runs.find((r) => r.path === "io.olamy.AlwaysFailTest")!.failure_details).toMatch(/^built to fail\n/);
    // One <flakyFailure> whose message is full of &#10;, then a pass.
    const flaky = runs.find((r) => r.path !== "io.olamy.AlwaysFailTest")!;
    expect(flaky).toMatchObject({ status: "pass", rerun_count: "1", duration_ms: "683" });
    expect(flaky.failure_details).toMatch(/^Expected: <false>\n {5}but: was <true>\n/);
    expect(await totals()).toEqual({
      ingestions: before.ingestions + 1,
      runs: before.runs + 2,
      cases: before.cases + 2,
    });
  });

  it("a glob over several reports is split into parts and every result lands", async () => {
    const dir = path.join(workDir as string, "glob");
    // A CI workspace: reports from several jobs, one of them (a failed Go build) without any testcase.
    const layout: Array<[string, string]> = [
      ["pytest-horovod.xml", "reports/python/junit.gloo.elastic.xml"],
      ["jest-junit.xml", "reports/web/jest-junit.xml"],
      ["nested.xml", "reports/web/nested/junit.xml"],
      ["bun-nested.xml", "reports/bun/junit.xml"],
      ["gotestsum-empty.xml", "reports/go/gotest.xml"],
    ];
    for (const [from, to] of layout) {
      await mkdir(path.dirname(path.join(dir, to)), { recursive: true });
      await copyFile(path.join(ROOT, CORPUS, from), path.join(dir, to));
    }
    const before = await totals();
    const run = await upload(
      ["reports/**/*.xml", "--commit", COMMIT, "--run-id", "e2e-glob", "--branch", "main", "--max-results", "5"],
      {},
      dir,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain("reports/go/gotest.xml: no <testcase> elements, nothing to send from it");
    // 14 + 6 + 5 + 3 testcases, at most 5 per part.
    const planned = /uploading (\d+) results in (\d+) parts/.exec(run.stdout);
    expect(planned?.[1]).toBe("28");
    const parts = Number(planned?.[2]);
    expect(parts).toBeGreaterThanOrEqual(6);
    expect(run.stdout).toContain(`${parts}/${parts} parts uploaded`);
    expect(run.stdout.match(/^part \d+\/\d+: \d+ tests? parsed/gm)).toHaveLength(parts);

    const ingestions = await query<{ tests_total: string; idempotency_key: string }>(
      "select tests_total, idempotency_key from ingestions where repo_id = $1 and run_id = 'e2e-glob'",
      [repoId],
    );
    expect(ingestions).toHaveLength(parts);
    expect(new Set(ingestions.map((i) => i.idempotency_key)).size).toBe(parts);
    expect(ingestions.reduce((sum, i) => sum + Number(i.tests_total), 0)).toBe(28);
    expect(ingestions.every((i) => Number(i.tests_total) <= 5)).toBe(true);
    // horovod 10/0/4, jest-junit 1/4/1, nested 2/3/0, bun 2/1/0.
    expect(await statusCounts("e2e-glob")).toEqual({ pass: 15, fail: 8, skip: 5 });

    // Two test classes inherit one test from elastic_common.py: the file is the path, the class tells them apart.
    const inherited = await query(
      `select c.name, r.duration_ms from test_runs r join test_cases c on c.id = r.test_case_id
        where r.repo_id = $1 and r.run_id = 'e2e-glob'
          and c.path = 'test/integration/elastic_common.py' and c.name like '%::test_all_ranks_failure'
        order by r.duration_ms`,
      [repoId],
    );
    expect(inherited).toEqual([
      { name: "test.integration.test_elastic_torch.ElasticTorchTests::test_all_ranks_failure", duration_ms: "2874" },
      {
        name: "test.integration.test_elastic_tensorflow.ElasticTensorFlowTests::test_all_ranks_failure",
        duration_ms: "4603",
      },
    ]);
    const after = await totals();
    expect(after.runs - before.runs).toBe(28);
    expect(after.ingestions - before.ingestions).toBe(parts);
  });

  it("shards of one CI run (same commit and run id, v1) are stored as two uploads; a shard sent again is a duplicate", async () => {
    const before = await totals();
    const shard = (file: string) =>
      upload([`${CORPUS}/${file}`, "--commit", COMMIT, "--run-id", "e2e-shards", "--signature", "v1"]);
    const [first, second] = [await shard("jest-junit.xml"), await shard("nested.xml")];
    expect(first.code, first.stderr).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    expect(first.stdout + second.stdout).not.toContain("duplicate");
    const ingestions = await query<{ idempotency_key: string; tests_total: string }>(
      "select idempotency_key, tests_total from ingestions where repo_id = $1 and run_id = 'e2e-shards' order by tests_total",
      [repoId],
    );
    // The uploader's own keys (ap_…, one per shard's content) travel in the v1 body.
    expect(ingestions.map((i) => i.tests_total)).toEqual(["5", "6"]);
    expect(new Set(ingestions.map((i) => i.idempotency_key)).size).toBe(2);
    for (const i of ingestions) expect(i.idempotency_key).toMatch(/^ap_[0-9a-f]{64}$/);
    // jest-junit 1/4/1, nested 2/3/0.
    expect(await statusCounts("e2e-shards")).toEqual({ pass: 3, fail: 7, skip: 1 });

    const again = await shard("nested.xml");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("already received earlier (duplicate, nothing stored twice)");
    const after = await totals();
    expect(after).toEqual({ ingestions: before.ingestions + 2, runs: before.runs + 11, cases: after.cases });
  });

  it("a folder of mixed reports: each file's format is detected and every result of every format lands", async () => {
    const fixtures = path.resolve(CORPUS, "..");
    const folder = path.join(workDir as string, "mixed");
    const picks = [
      "junit/pytest.xml",
      "trx/xunit-v3.trx",
      "nunit/jenkins-nunit-correct.xml",
      "jest-json/jest-testresultsprocessor-books.json",
      "mocha-json/mocha-own-suite.json",
      "playwright-json/e2e-playwright-interial.json",
      "pytest-json/pytest-json-report-sample.json",
      "go-test-json/gotestsum-input.out",
      "rspec-json/rspec-dorny.json",
      "dart-json/dart-dorny.json",
      "ctrf/playwright-ctrf-flaky-project.json",
    ];
    let expected = 0;
    for (const [index, pick] of picks.entries()) {
      const content = await readFile(path.join(fixtures, pick), "utf8");
      expected += parseReport(detectFormat(content) as string, content).results.length;
      // Names that say nothing of the format: detection is by content.
      await mkdir(path.join(folder, String(index)), { recursive: true });
      await writeFile(path.join(folder, String(index), "report.out"), content);
    }
    const run = await upload(["mixed/**/*", "--commit", COMMIT, "--run-id", "e2e-mixed"], {}, workDir);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const [stored] = await query<{ n: string }>(
      "select count(*) as n from test_runs where repo_id = $1 and run_id = 'e2e-mixed'",
      [repoId],
    );
    expect(Number(stored!.n)).toBe(expected);
    expect(expected).toBeGreaterThan(900);
  });

  describe("the installable package (npm run build:uploader, npm pack, npm install of the tarball)", () => {
    let installed: InstalledUploader;

    beforeAll(async () => {
      installed = await packAndInstall(path.join(workDir as string, "package"));
    }, 120_000);

    it("is one bundled file and a manifest, for Node 18 and later, with no dependencies to install", () => {
      expect(installed.files).toEqual(["README.md", "dist/anchorpipe.mjs", "package.json"]);
      expect(installed.manifest).toMatchObject({
        name: "anchorpipe",
        bin: { anchorpipe: "dist/anchorpipe.mjs" },
        engines: { node: ">=18" },
      });
      expect(installed.manifest.dependencies).toBeUndefined();
    });

    it("installed in a folder without this repository, uploads to the Worker with every Node at hand", async () => {
      const reports = path.join(installed.projectDir, "reports");
      await mkdir(reports, { recursive: true });
      await copyFile(path.join(ROOT, CORPUS, "bun-nested.xml"), path.join(reports, "junit.xml"));
      const nodes = await nodeBinaries();
      for (const { node, version } of nodes) {
        const runId = `e2e-package-${version}`;
        // The bin's "#!/usr/bin/env node" finds this Node first, as it would in a CI image with that Node.
        const env = { PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}` };
        const run = await upload(["reports/*.xml", "--commit", COMMIT, "--run-id", runId], env, installed.projectDir, [
          installed.bin,
        ]);
        expect(run.code, `${version}: ${run.stderr}`).toBe(0);
        expect(run.stdout).toContain(`uploading 3 results in 1 part`);
        expect(run.stdout).toContain("1/1 part uploaded");
        expect(await statusCounts(runId), version).toEqual({ pass: 2, fail: 1 });
      }
      const version = await runCli([], {}, installed.projectDir, [installed.bin, "--version"]);
      expect(version.stdout.trim()).toBe(installed.manifest.version);
    });
  });

  it("a wrong secret is rejected (exit 1), nothing is stored and the failure is audited", async () => {
    const before = await totals();
    const wrong = `whsec_${randomBytes(32).toString("base64")}`;
    const run = await upload([`${CORPUS}/gotestsum.xml`, "--commit", COMMIT, "--run-id", "e2e-wrong-secret"], {
      ANCHORPIPE_SECRET: wrong,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/part 1\/1 rejected: HTTP 401 unauthorized: Missing or invalid signature\./);
    expect(run.stdout).toContain("0/1 part uploaded");
    expect(run.stdout + run.stderr).not.toContain(wrong);
    expect(await totals()).toEqual(before);
    const audited = await query(
      "select metadata->>'reason' as reason from audit_logs where action = 'hmac_auth_failure' and subject_id = $1",
      [repoId],
    );
    expect(audited.map((a) => a.reason)).toEqual(["signature_mismatch"]);
  });

  describe("quarantine: anchorpipe quarantine and anchorpipe test (a repository of its own)", () => {
    const Q_COMMIT = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
    // Each `anchorpipe test` run below is on a commit of its own: a test that passed and failed on one
    // commit would (rightly) become flaky and change the list.
    const NEXT_COMMIT = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
    let quarantineRepo = "";
    let quarantineSecret = "";
    let dir = "";
    const env = () => ({
      ANCHORPIPE_URL: (worker as WranglerDev).url,
      ANCHORPIPE_REPO_ID: quarantineRepo,
      ANCHORPIPE_SECRET: quarantineSecret,
    });
    const cli = async (args: string[], cwd = dir) => {
      const run = await runAnchorpipe(args, env(), cwd);
      expect(run.stdout + run.stderr).not.toContain(quarantineSecret.slice("whsec_".length));
      return run;
    };

    beforeAll(async () => {
      ({
        repo: { id: quarantineRepo },
        plaintext: quarantineSecret,
      } = await createRepoWithSecret(database!.backend, await parseKeyring(kek), { owner: "e2e", name: "quarantine" }));
      dir = path.join(workDir as string, "quarantine");
      await mkdir(dir, { recursive: true });
    });

    /** A CI run: pytest's suite of the checkout tests, the named ones failing, on one commit. */
    const uploadRun = async (runId: string, commit: string, failing: string[]) => {
      const file = path.join(dir, `${runId}.xml`);
      await writeFile(file, checkoutReport(failing));
      const run = await cli(["upload", file, "--commit", commit, "--run-id", runId]);
      expect(run.code, run.stderr).toBe(0);
      return run;
    };

    /** `node -e` that writes the checkout report with these tests failing, then exits with `code`. */
    const testCommand = (failing: string[], code: number) => [
      process.execPath,
      "-e",
      `const fs = require("fs"); fs.mkdirSync("reports", { recursive: true });` +
        `fs.writeFileSync("reports/junit.xml", ${JSON.stringify(checkoutReport(failing))}); process.exit(${code});`,
    ];

    it("a test that passes and fails on the same commit becomes flaky in that upload and is listed", async () => {
      const empty = await cli(["quarantine", "--format", "list"]);
      expect(empty.code, empty.stderr).toBe(0);
      expect(empty.stdout).toBe("");

      await uploadRun("q-1", Q_COMMIT, []);
      const second = await uploadRun("q-2", Q_COMMIT, ["test_payment"]);
      // Scored within the upload that showed the contradiction.
      expect(second.stdout).toMatch(/1 failed, 0 skipped, 1 flaky candidate/);
      const scores = await query<{ name: string; class: string }>(
        `select c.name, s.class::text from flake_scores s join test_cases c on c.id = s.test_case_id
          where s.repo_id = $1 and s.class in ('flaky', 'highly_flaky')`,
        [quarantineRepo],
      );
      expect(scores.map((s) => s.name)).toEqual(["test_payment"]);

      const list = await cli(["quarantine", "--format", "list"]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toBe("tests.checkout::test_payment\n");
      const names = await cli(["quarantine", "--format", "names"]);
      expect(names.stdout).toBe("test_payment\n");
      const json = await cli(["quarantine", "--format", "json"]);
      expect(JSON.parse(json.stdout)).toEqual({
        repoId: quarantineRepo,
        tests: [
          {
            testId: expect.stringMatching(/^[0-9a-f-]{36}$/),
            path: "tests.checkout",
            name: "test_payment",
            suite: "tests.checkout",
            framework: "junit",
            class: scores[0]!.class,
            score: expect.any(Number),
            reason: expect.stringMatching(/\S/),
            owners: [],
          },
        ],
      });
    });

    it("--cache keeps the list and its ETag: the next fetch is a 304 and the cached list is used", async () => {
      const cache = path.join(dir, ".anchorpipe", "quarantine.json"); // its folder is made
      const output = path.join(dir, "quarantine.txt");
      const first = await cli(["quarantine", "--cache", cache, "--output", output]);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toBe(`anchorpipe: 1 quarantined test written to ${output}\n`);
      const stored = JSON.parse(await readFile(cache, "utf8")) as { etag: string; body: string };
      expect(stored.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      await rm(output);
      const second = await cli(["quarantine", "--cache", cache, "--output", output]);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain(`written to ${output} (unchanged since the cached list)`);
      expect(await readFile(output, "utf8")).toBe("tests.checkout::test_payment\n");
      // A stale tag (another list's) is answered in full and the cache is refreshed.
      await writeFile(cache, JSON.stringify({ ...stored, etag: '"stale"' }));
      const third = await cli(["quarantine", "--cache", cache, "--output", output]);
      expect(third.stderr).not.toContain("unchanged");
      expect(JSON.parse(await readFile(cache, "utf8")).etag).toBe(stored.etag);
    });

    it("anchorpipe test exits 0 when the only failure is the quarantined test, names it and uploads the run", async () => {
      const work = path.join(dir, "tolerated");
      await mkdir(work);
      const run = await cli(
        [
          "test",
          "--reports",
          "reports/*.xml",
          "--commit",
          NEXT_COMMIT,
          "--run-id",
          "q-test-1",
          "--",
          ...testCommand(["test_payment"], 1),
        ],
        work,
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain("anchorpipe: 1 quarantined test");
      expect(run.stderr).toContain("exited with 1; every failing test is quarantined, so exiting 0");
      expect(run.stderr).toMatch(
        /tolerated: tests\.checkout::test_payment \(junit, in reports\/junit\.xml\): (highly_)?flaky, score \d+, \S/,
      );
      expect(run.stderr).toContain("1/1 part uploaded");
      const stored = await query(
        `select c.name, r.status::text from test_runs r join test_cases c on c.id = r.test_case_id
          where r.repo_id = $1 and r.run_id = 'q-test-1' and r.status = 'fail'`,
        [quarantineRepo],
      );
      expect(stored).toEqual([{ name: "test_payment", status: "fail" }]);
    });

    it("anchorpipe test keeps exit 1 when a test that is not quarantined fails too, and says which", async () => {
      const work = path.join(dir, "not-tolerated");
      await mkdir(work);
      const run = await cli(
        [
          "test",
          "--reports",
          "reports/*.xml",
          "--commit",
          "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0",
          "--run-id",
          "q-test-2",
          "--",
          ...testCommand(["test_payment", "test_refund"], 1),
        ],
        work,
      );
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain("exited with 1; 1 failing test is not quarantined, exiting 1:");
      expect(run.stderr).toContain("  failed: tests.checkout::test_refund (junit, in reports/junit.xml)");
      expect(run.stderr).toContain("quarantined (would be tolerated): tests.checkout::test_payment");
    });

    it("the built package (one bundled file, parsers included) does the same under every Node at hand", async () => {
      const built = await buildUploaderPackage(path.join(dir, "package"));
      for (const { node, version } of await nodeBinaries()) {
        const work = path.join(dir, `package-${version}`);
        await mkdir(work);
        const list = await runAnchorpipe(["quarantine"], env(), work, [node, built.bin]);
        expect(list.code, `${version}: ${list.stderr}`).toBe(0);
        expect(list.stdout).toBe("tests.checkout::test_payment\n");
        const args = [
          "test",
          "--reports",
          "reports/*.xml",
          "--commit",
          "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0",
          "--run-id",
          `q-package-${version}`,
        ];
        const run = await runAnchorpipe([...args, "--", ...testCommand(["test_payment"], 1)], env(), work, [
          node,
          built.bin,
        ]);
        expect(run.code, `${version}: ${run.stderr}`).toBe(0);
        expect(run.stderr).toContain("tolerated: tests.checkout::test_payment (junit, in reports/junit.xml)");
      }
    });

    it("a wrong secret: anchorpipe quarantine exits 1 with the 401; anchorpipe test falls back to the command's code", async () => {
      const wrong = { ...env(), ANCHORPIPE_SECRET: `whsec_${randomBytes(32).toString("base64")}` };
      const list = await runAnchorpipe(["quarantine"], wrong, dir);
      expect(list.code).toBe(1);
      expect(list.stdout).toBe("");
      expect(list.stderr).toMatch(/anchorpipe: error: .*\/quarantine answered HTTP 401: unauthorized: /);
      const work = path.join(dir, "wrong-secret");
      await mkdir(work);
      const args = ["test", "--reports", "reports/*.xml", "--commit", NEXT_COMMIT, "--run-id", "q-wrong-secret"];
      const run = await runAnchorpipe([...args, "--", ...testCommand(["test_payment"], 1)], wrong, work);
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toMatch(/could not fetch the quarantine list \(.*answered HTTP 401/);
      expect(run.stderr).toContain("the upload failed (rejected)");
      expect(run.stderr).toContain("the quarantine list could not be fetched, so nothing is tolerated: exiting 1");
      expect(run.stdout + run.stderr).not.toContain(wrong.ANCHORPIPE_SECRET.slice("whsec_".length));
    });

    it("anchorpipe test keeps a crash's exit code when the reports show no failure", async () => {
      const work = path.join(dir, "crash");
      await mkdir(work);
      const run = await cli(
        [
          "test",
          "--reports",
          "reports/*.xml",
          "--commit",
          "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
          "--run-id",
          "q-test-3",
          "--",
          ...testCommand([], 3),
        ],
        work,
      );
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toContain("exited with 3 but its reports show no failing test");
    });
  });
});

describe("uploader against an unreachable service", () => {
  it("warns and exits 0 by default; exits 2 with --strict", async () => {
    const url = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const args = [
      `${CORPUS}/gotestsum.xml`,
      "--url",
      url,
      "--commit",
      COMMIT,
      "--run-id",
      "e2e-down",
      "--retries",
      "1",
      "--retry-delay",
      "10",
      "--timeout",
      "2",
    ];
    const env = {
      ANCHORPIPE_REPO_ID: "6b1f3c9e-1111-4222-8333-944445555666",
      ANCHORPIPE_SECRET: `whsec_${randomBytes(32).toString("base64")}`,
    };
    const [lenient, strict] = await Promise.all([runCli(args, env), runCli([...args, "--strict"], env)]);
    expect(lenient.code, lenient.stderr).toBe(0);
    expect(lenient.stderr).toContain(`the service at ${url}`);
    expect(lenient.stderr).toContain("Not failing the build (pass --strict to fail it)");
    expect(strict.code, strict.stderr).toBe(2);
    expect(strict.stderr).toContain("failing because of --strict");
  });

  it("anchorpipe test falls back to the command's exit code, and says so, when the service cannot be reached", async () => {
    const url = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const work = await mkdtemp(path.join(tmpdir(), "anchorpipe-e2e-test-down-"));
    try {
      const write = `require("fs").mkdirSync("reports");require("fs").writeFileSync("reports/junit.xml", ${JSON.stringify(checkoutReport(["test_payment"]))});process.exit(1)`;
      const run = await runAnchorpipe(
        [
          "test",
          "--url",
          url,
          "--reports",
          "reports/*.xml",
          "--commit",
          COMMIT,
          "--run-id",
          "e2e-test-down",
          "--retries",
          "0",
          "--",
          process.execPath,
          "-e",
          write,
        ],
        {
          ANCHORPIPE_REPO_ID: "6b1f3c9e-1111-4222-8333-944445555666",
          ANCHORPIPE_SECRET: `whsec_${randomBytes(32).toString("base64")}`,
        },
        work,
      );
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain(`could not fetch the quarantine list (could not reach ${url}/api/repos/`);
      expect(run.stderr).toContain("the quarantine list could not be fetched, so nothing is tolerated: exiting 1");
      expect(run.stderr).toContain("the upload failed (unavailable)");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
