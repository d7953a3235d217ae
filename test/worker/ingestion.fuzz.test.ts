import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { expectHandled, payload, repoDigest, repoWithSecret, sampleTests, testDb, upload } from "./ingestion-support";

/**
 * Signed, valid-looking uploads with hostile values in every field, in both
 * payload forms (JSON results and JUnit XML). The signature is always right,
 * so everything after authentication is exercised: validation, parsing,
 * normalising and storage. Whatever the input: never a 5xx, and a 4xx leaves
 * the repository's rows byte-for-byte as they were.
 */

/** Any UTF-16 code unit, so lone surrogates appear, plus the characters that broke things before. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
const hostileChar = fc.oneof(
  fc.constantFrom("\u0000", "\ud800", "\udfff", "\ufffe", "\u2028", "&", "<", "]]>", '"', "\\", "\u001b", "测"),
  codeUnit,
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
);
const hostileString = fc.oneof(
  fc.string({ unit: hostileChar, maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: hostileChar, minLength: 990, maxLength: 1010 }),
  fc.constantFrom("", " ", "测".repeat(1000), "𝄞".repeat(700), "a.".repeat(500), "-".repeat(3000)),
);
const hostileDate = fc.oneof(
  fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
  fc.constantFrom(
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "-000001-01-01T00:00:00Z",
    "+275760-09-13T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "2023-02-29T00:00:00Z",
    "2024-02-29T12:00:00",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:00+99:99",
  ),
  hostileString,
);
const hostileNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(2 ** 31, 2 ** 31 - 1, -1, 1e300, -0, 0.5, Number.MAX_SAFE_INTEGER + 2, 1001),
);
const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    hostileString,
    hostileNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(hostileString, tie("value"), { maxKeys: 4 }),
  ),
})).value;
const hostileValue = fc.oneof(hostileString, hostileDate, hostileNumber, hostileJson);

const TOP_FIELDS = [
  "repo_id",
  "commit_sha",
  "run_id",
  "framework",
  "branch",
  "pull_request",
  "environment",
  "metadata",
  "idempotency_key",
] as const;
const RESULT_FIELDS = [
  "path",
  "name",
  "status",
  "startedAt",
  "durationMs",
  "failureDetails",
  "tags",
  "metadata",
  "rerunCount",
  "suite",
] as const;

/** A value of the kind the field holds, made hostile, or any hostile value at all. */
function valueFor(field: string): fc.Arbitrary<unknown> {
  switch (field) {
    case "startedAt":
      return hostileDate;
    case "durationMs":
    case "rerunCount":
      return hostileNumber;
    case "tags":
      return fc.oneof(fc.array(hostileString, { maxLength: 60 }), hostileValue);
    case "metadata":
    case "environment":
      return fc.oneof(fc.dictionary(hostileString, hostileString, { maxKeys: 5 }), hostileJson);
    default:
      return fc.oneof(hostileString, hostileValue);
  }
}

describe("hostile values in signed uploads (JSON results)", () => {
  it("one field of the payload or of a result replaced: never 5xx, 4xx changes nothing", async () => {
    const repo = await repoWithSecret("fuzz-json");
    const mutation = fc.oneof(
      fc.constantFrom(...TOP_FIELDS).chain((field) => valueFor(field).map((value) => ({ top: true, field, value }))),
      fc
        .constantFrom(...RESULT_FIELDS)
        .chain((field) => valueFor(field).map((value) => ({ top: false, field, value }))),
    );
    await fc.assert(
      fc.asyncProperty(mutation, fc.constantFrom("v1" as const, "v2" as const), async (m, scheme) => {
        const tests = sampleTests(3) as Record<string, unknown>[];
        const body: Record<string, unknown> = payload(repo.repoId, {}, tests);
        if (m.top) body[m.field] = m.value;
        else tests[1][m.field] = m.value;
        await expectHandled(repo, body, scheme);
      }),
      { numRuns: 150 },
    );
  });

  it("every string of a result hostile at once, metadata and environment included", async () => {
    const repo = await repoWithSecret("fuzz-all");
    const result = fc.record({
      path: hostileString,
      name: hostileString,
      status: fc.constantFrom("pass", "fail", "skip"),
      startedAt: hostileDate,
      durationMs: hostileNumber,
      failureDetails: hostileString,
      tags: fc.array(hostileString, { maxLength: 3 }),
      metadata: fc.dictionary(hostileString, hostileJson, { maxKeys: 3 }),
      rerunCount: hostileNumber,
      suite: hostileString,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(result, { minLength: 1, maxLength: 3 }),
        fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
        hostileString,
        async (tests, environment, runId) => {
          await expectHandled(repo, payload(repo.repoId, { environment, run_id: runId }, tests));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("values that PostgreSQL cannot store are a 400 naming the field", async () => {
    const repo = await repoWithSecret("fuzz-named");
    const cases: [Record<string, unknown>, string][] = [
      [{ run_id: "run\u0000" }, "run_id"],
      [{ branch: "main\ud800" }, "branch"],
      [{ idempotency_key: "key\u0000" }, "idempotency_key"],
      [{ environment: { "OS\u0000": "linux" } }, "environment"],
      [{ environment: { OS: "linux\udc00" } }, "environment.OS"],
      [{ metadata: { "a\u0000": 1 } }, "metadata"],
      [{ metadata: { nested: { deeper: ["x\ud800"] } } }, "metadata"],
      [{ tests: [{ ...sampleTests(1)[0], name: "n\u0000" }] }, "tests.0.name"],
      [{ tests: [{ ...sampleTests(1)[0], path: "\udfffp" }] }, "tests.0.path"],
      [{ tests: [{ ...sampleTests(1)[0], tags: ["ok", "t\u0000"] }] }, "tests.0.tags.1"],
      [{ tests: [{ ...sampleTests(1)[0], suite: "s\u0000" }] }, "tests.0.suite"],
      [{ tests: [{ ...sampleTests(1)[0], metadata: { k: "v\u0000" } }] }, "tests.0.metadata"],
      [{ tests: [{ ...sampleTests(1)[0], startedAt: "0000-01-01T00:00:00Z" }] }, "tests.0.startedAt"],
      [{ tests: [{ ...sampleTests(1)[0], startedAt: "1969-12-31T23:59:59Z" }] }, "tests.0.startedAt"],
      [{ tests: [{ ...sampleTests(1)[0], startedAt: "+275760-09-13T00:00:00Z" }] }, "tests.0.startedAt"],
      [{ tests: [{ ...sampleTests(1)[0], durationMs: 2 ** 31 }] }, "tests.0.durationMs"],
      [{ tests: [{ ...sampleTests(1)[0], rerunCount: 1001 }] }, "tests.0.rerunCount"],
      [{ tests: [{ ...sampleTests(1)[0], path: "测".repeat(1000), name: "测".repeat(1000) }] }, "tests.0.name"],
      [{ metadata: nested(40) }, "metadata"],
    ];
    const before = await repoDigest(repo.repoId);
    for (const [overrides, path] of cases) {
      const res = await upload(payload(repo.repoId, overrides), repo);
      const body = await res.json<{ error: { code: string; details?: { path: string }[] } }>();
      expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(400);
      expect(body.error.code).toBe("validation_failed");
      const paths = body.error.details?.map((d) => d.path) ?? [];
      expect(
        paths.some((p) => p === path || p.startsWith(`${path}.`)),
        `${path} in ${paths}`,
      ).toBe(true);
    }
    expect(await repoDigest(repo.repoId)).toBe(before);
  });

  it("failure output is cleaned, not refused: NUL and lone surrogates become U+FFFD", async () => {
    const repo = await repoWithSecret("fuzz-clean");
    const tests = [{ ...sampleTests(1)[0], status: "fail", failureDetails: "bad\u0000byte \ud800 end" }];
    const res = await upload(payload(repo.repoId, {}, tests), repo);
    expect(res.status, await res.clone().text()).toBe(200);
    const stored = await testDb().execute<{ details: string }>(
      sql`select failure_details as details from test_runs where repo_id = ${repo.repoId}`,
    );
    expect(stored.rows).toEqual([{ details: "bad\ufffdbyte \ufffd end" }]);
  });
});

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < depth; i++) value = { child: value };
  return value;
}

/** XML-escapes what would break the document's structure; every other character stays as generated. */
const xmlText = (value: string) =>
  value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

describe("hostile values in signed uploads (JUnit XML reports)", () => {
  it("names, attributes, times, timestamps and output: never 5xx, 4xx changes nothing", async () => {
    const repo = await repoWithSecret("fuzz-junit");
    const testcase = fc.record({
      name: hostileString,
      classname: hostileString,
      file: fc.option(hostileString),
      time: fc.oneof(hostileNumber.map(String), hostileString),
      timestamp: fc.option(hostileDate),
      outcome: fc.constantFrom("pass", "failure", "error", "skipped", "flakyFailure"),
      message: hostileString,
      output: hostileString,
    });
    const report = fc.record({
      suite: hostileString,
      suiteTimestamp: hostileDate,
      property: fc.tuple(hostileString, hostileString),
      cases: fc.array(testcase, { minLength: 1, maxLength: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(report, async (r) => {
        const cases = r.cases
          .map((c) => {
            const attrs = [
              `name="${xmlText(c.name)}"`,
              `classname="${xmlText(c.classname)}"`,
              c.file === null ? "" : `file="${xmlText(c.file)}"`,
              `time="${xmlText(c.time)}"`,
              c.timestamp === null ? "" : `timestamp="${xmlText(c.timestamp)}"`,
            ].join(" ");
            const inner =
              c.outcome === "pass"
                ? `<system-out>${xmlText(c.output)}</system-out>`
                : `<${c.outcome} message="${xmlText(c.message)}">${xmlText(c.output)}</${c.outcome}>`;
            return `<testcase ${attrs}>${inner}</testcase>`;
          })
          .join("\n");
        const xml = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="${xmlText(r.suite)}" timestamp="${xmlText(r.suiteTimestamp)}" tests="${r.cases.length}">
<properties><property name="${xmlText(r.property[0])}" value="${xmlText(r.property[1])}"/></properties>
${cases}
</testsuite></testsuites>`;
        const { tests: _, ...rest } = payload(repo.repoId);
        await expectHandled(repo, { ...rest, framework: "junit", reports: [{ format: "junit", content: xml }] });
      }),
      { numRuns: 120 },
    );
  });

  it("truncated and mangled documents: never 5xx, 4xx changes nothing", async () => {
    const repo = await repoWithSecret("fuzz-junit-mangled");
    const valid = `<testsuite name="s"><testcase classname="a.B" name="t1" time="0.1"/><testcase classname="a.B" name="t2"><failure message="m">out</failure></testcase></testsuite>`;
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: valid.length }),
        fc.nat({ max: valid.length }),
        fc.string({ unit: hostileChar, maxLength: 8 }),
        async (cut, at, insert) => {
          const content = valid.slice(0, at) + insert + valid.slice(at, Math.max(at, cut) || undefined);
          const { tests: _, ...rest } = payload(repo.repoId);
          await expectHandled(repo, { ...rest, framework: "junit", reports: [{ format: "junit", content }] });
        },
      ),
      { numRuns: 80 },
    );
  });
});
