/// <reference types="vite/client" />
// Runs inside workerd: the JUnit parser has to work at the edge, not just in Node.
import { describe, expect, it } from "vitest";
import { ReportParseError as JunitParseError, type ParsedTestResult } from "../../src/ingestion/formats";
import { parseJunitReport } from "../../src/ingestion/formats/junit";
import antBadDuration from "../fixtures/junit/ant-bad-duration.xml?raw";
import antTestsuites from "../fixtures/junit/ant-testsuites.xml?raw";
import billionLaughs from "../fixtures/junit/billion-laughs.xml?raw";
import bunNested from "../fixtures/junit/bun-nested.xml?raw";
import gotestsum from "../fixtures/junit/gotestsum.xml?raw";
import gotestsumEmpty from "../fixtures/junit/gotestsum-empty.xml?raw";
import gotestsumRerun from "../fixtures/junit/gotestsum-rerun.xml?raw";
import jestJunit from "../fixtures/junit/jest-junit.xml?raw";
import malformedTruncated from "../fixtures/junit/malformed-truncated.xml?raw";
import malformedUnclosed from "../fixtures/junit/malformed-unclosed.xml?raw";
import nested from "../fixtures/junit/nested.xml?raw";
import pytest from "../fixtures/junit/pytest.xml?raw";
import pytestHorovod from "../fixtures/junit/pytest-horovod.xml?raw";
import surefireFlaky from "../fixtures/junit/surefire-flaky.xml?raw";
import surefireFlakyMessage from "../fixtures/junit/surefire-flaky-message.xml?raw";
import surefireRerun from "../fixtures/junit/surefire-rerun.xml?raw";

/** The results of one JUnit document, as the ingestion stores them. */
const parseJunit = (xml: string): ParsedTestResult[] => parseJunitReport(xml).results;

function counts(results: ParsedTestResult[]) {
  const byStatus = { pass: 0, fail: 0, skip: 0 };
  for (const result of results) byStatus[result.status]++;
  return byStatus;
}

function find(results: ParsedTestResult[], path: string, name: string): ParsedTestResult {
  const found = results.filter((r) => r.path === path && r.name === name);
  expect(found, `${path} :: ${name}`).toHaveLength(1);
  return found[0]!;
}

function parseError(xml: string): JunitParseError {
  try {
    parseJunit(xml);
  } catch (error) {
    expect(error).toBeInstanceOf(JunitParseError);
    return error as JunitParseError;
  }
  throw new Error("expected a JunitParseError");
}

describe("parseJunit: the corpus of real reports", () => {
  it.each([
    ["ant-testsuites.xml", antTestsuites, 3, { pass: 3, fail: 0, skip: 0 }],
    ["ant-bad-duration.xml", antBadDuration, 1, { pass: 1, fail: 0, skip: 0 }],
    ["surefire-flaky.xml", surefireFlaky, 1, { pass: 1, fail: 0, skip: 0 }],
    ["surefire-flaky-message.xml", surefireFlakyMessage, 1, { pass: 1, fail: 0, skip: 0 }],
    ["surefire-rerun.xml", surefireRerun, 1, { pass: 0, fail: 1, skip: 0 }],
    ["pytest.xml", pytest, 10, { pass: 6, fail: 2, skip: 2 }],
    ["pytest-horovod.xml", pytestHorovod, 14, { pass: 10, fail: 0, skip: 4 }],
    ["jest-junit.xml", jestJunit, 6, { pass: 1, fail: 4, skip: 1 }],
    ["gotestsum.xml", gotestsum, 2, { pass: 2, fail: 0, skip: 0 }],
    ["gotestsum-rerun.xml", gotestsumRerun, 11, { pass: 5, fail: 4, skip: 2 }],
    ["nested.xml", nested, 5, { pass: 2, fail: 3, skip: 0 }],
    ["bun-nested.xml", bunNested, 3, { pass: 2, fail: 1, skip: 0 }],
  ] as const)("%s", (_file, xml, total, byStatus) => {
    const results = parseJunit(xml);
    expect(results).toHaveLength(total);
    expect(counts(results)).toEqual(byStatus);
  });
});

describe("parseJunit: Ant / Jenkins", () => {
  it("reads <testsuites> of Ant's junitreport: path from classname, seconds to ms, zone-less timestamps as UTC", () => {
    const results = parseJunit(antTestsuites);
    expect(results[0]).toEqual({
      path: "com.sample.test.TestMessage",
      name: "test_welcome_message",
      status: "pass",
      startedAt: "2015-01-13T07:23:07.000Z",
      durationMs: 2,
      rerunCount: 0,
      suite: "com.sample.test.TestMessage",
    });
    expect(find(results, "com.sample.test.TestMessage2", "test_welcome_message_3")).toMatchObject({
      durationMs: 3,
      startedAt: "2015-01-13T07:23:08.000Z",
    });
  });

  it("ignores a negative time and folds a repeated testcase (both passed: no rerun)", () => {
    expect(parseJunit(antBadDuration)).toEqual([
      {
        path: "DummyTest",
        name: "testDummyMethod",
        status: "pass",
        startedAt: "2009-01-16T22:57:13.000Z",
        durationMs: 100_000,
        rerunCount: 0,
        suite: "DummyTest",
        metadata: { attempts: 2 },
      },
    ]);
  });
});

describe("parseJunit: Maven Surefire reruns", () => {
  it("flakyFailure: failed attempts of a test that finally passed", () => {
    const [result] = parseJunit(surefireFlaky);
    expect(result).toMatchObject({
      path: "io.olamy.FlakyTest",
      name: "testApp",
      status: "pass",
      durationMs: 1,
      rerunCount: 2,
      suite: "io.olamy.FlakyTest",
    });
    // The last failed attempt explains the flake: its message, then its <stackTrace>.
    expect(result!.failureDetails).toMatch(
      /^try one more time maybe\n\njunit\.framework\.AssertionFailedError: try one more time maybe\n\tat /,
    );
  });

  it("decodes numeric character references in a flakyFailure message", () => {
    const [result] = parseJunit(surefireFlakyMessage);
    expect(result).toMatchObject({ status: "pass", rerunCount: 1, durationMs: 683 });
    expect(result!.failureDetails).toMatch(/^Expected: <false>\n {5}but: was <true>\n\njava\.lang\.AssertionError/);
  });

  it("rerunFailure: every attempt failed", () => {
    const [result] = parseJunit(surefireRerun);
    expect(result).toMatchObject({
      path: "io.olamy.AlwaysFailTest",
      name: "testApp",
      status: "fail",
      durationMs: 1,
      rerunCount: 3,
      metadata: { failureKind: "failure", failureType: "junit.framework.AssertionFailedError" },
    });
    expect(result!.failureDetails).toMatch(/^built to fail\n\njunit\.framework\.AssertionFailedError: built to fail\n/);
  });
});

describe("parseJunit: pytest", () => {
  const results = parseJunit(pytest);

  it("keeps [params] in the name and takes the dotted classname as path", () => {
    expect(find(results, "tests.test_lib", "test_parameterized[param1]")).toMatchObject({
      status: "pass",
      durationMs: 0,
    });
    expect(find(results, "tests.test_lib", "test_parameterized[param2]").status).toBe("pass");
    expect(find(results, "custom_classname", "test_with_record_xml_attribute").suite).toBe("custom_classname");
  });

  it("xfail is a skip marked xfail; a plain skip is not", () => {
    expect(find(results, "tests.test_lib", "test_expected_failure")).toMatchObject({
      status: "skip",
      metadata: { xfail: true },
    });
    const skipped = find(results, "tests.test_lib", "test_always_skip");
    expect(skipped.status).toBe("skip");
    expect(skipped.metadata).toBeUndefined();
  });

  it("failure details are the message, a blank line, then the body", () => {
    expect(find(results, "tests.test_lib", "test_always_fail")).toMatchObject({
      status: "fail",
      failureDetails:
        "assert False\n\ndef test_always_fail():\n        > assert False\n        E assert False\n\n        tests/test_lib.py:25: AssertionError",
      metadata: { failureKind: "failure" },
    });
  });

  it("a suite timestamp with an offset becomes UTC", () => {
    expect(results.every((r) => r.startedAt === "2025-11-15T16:51:49.548Z")).toBe(true);
  });

  it("path is the file attribute when present; the class qualifies the name, so tests inherited from one file by two classes stay apart", () => {
    const horovod = parseJunit(pytestHorovod);
    const shared = horovod.filter(
      (r) => r.path === "test/integration/elastic_common.py" && r.name.endsWith("::test_all_ranks_failure"),
    );
    expect(shared.map((r) => [r.name, r.suite, r.durationMs, r.rerunCount])).toEqual([
      [
        "test.integration.test_elastic_torch.ElasticTorchTests::test_all_ranks_failure",
        "test.integration.test_elastic_torch.ElasticTorchTests",
        2874,
        0,
      ],
      [
        "test.integration.test_elastic_tensorflow.ElasticTensorFlowTests::test_all_ranks_failure",
        "test.integration.test_elastic_tensorflow.ElasticTensorFlowTests",
        4603,
        0,
      ],
    ]);
    // The class's module is the file itself: only the class qualifies the name (pytest's node id shape).
    expect(horovod[0]).toMatchObject({
      path: "test/integration/test_elastic_torch.py",
      name: "ElasticTorchTests::test_all_hosts_blacklisted",
      status: "skip",
      startedAt: "2020-08-31T09:25:25.803Z",
      durationMs: 3,
    });
  });
});

describe("parseJunit: jest-junit", () => {
  it("classname and name are both the full title; a leading space from an empty describe is trimmed", () => {
    const results = parseJunit(jestJunit);
    expect(find(results, "Test 1 Test 1.1 Failing test", "Test 1 Test 1.1 Failing test")).toMatchObject({
      status: "fail",
      durationMs: 1,
      startedAt: "2020-10-18T19:07:47.000Z",
    });
    expect(find(results, "Test 1 Test 1.1 Failing test", "Test 1 Test 1.1 Failing test").failureDetails).toMatch(
      /^Error: expect\(received\)\.toBeTruthy\(\)\n\nReceived: false\n {4}at Object\.test \(C:\\Users\\/,
    );
    expect(find(results, "Skipped test", "Skipped test")).toMatchObject({ status: "skip", durationMs: 0 });
  });

  it("uses the file attribute as path when jest-junit is configured to write it", () => {
    const [result] = parseJunit(
      '<testsuites><testsuite name="cart"><testcase classname="cart adds" name="cart adds" file="src/cart.test.ts" time="0.01"/></testsuite></testsuites>',
    );
    expect(result).toMatchObject({ path: "src/cart.test.ts", name: "cart adds", suite: "cart adds", durationMs: 10 });
  });
});

describe("parseJunit: gotestsum", () => {
  it("one suite per package, RFC 3339 timestamps", () => {
    expect(parseJunit(gotestsum)).toEqual([
      {
        path: "example/hello",
        name: "TestPassEveryThirdExecution",
        status: "pass",
        startedAt: "2024-08-27T00:46:15.000Z",
        durationMs: 100,
        rerunCount: 0,
        suite: "example/hello",
      },
      {
        path: "example/hello",
        name: "TestCurrentMinute",
        status: "pass",
        startedAt: "2024-08-27T00:46:15.000Z",
        durationMs: 0,
        rerunCount: 0,
        suite: "example/hello",
      },
    ]);
  });

  describe("--rerun-fails: every attempt is its own testcase", () => {
    const results = parseJunit(gotestsumRerun);
    const stub = "github.com/gotestyourself/gotestyourself/testjson/internal/stub";

    it("failed then passed: one pass with a rerun, durations summed, the failure kept", () => {
      expect(find(results, stub, "TestFailed")).toEqual({
        path: stub,
        name: "TestFailed",
        status: "pass",
        startedAt: undefined,
        durationMs: 10,
        failureDetails: "Failed\n\n=== RUN   TestFailed\n--- FAIL: TestFailed (0.00s)\n\tstub_test.go:34: this failed",
        rerunCount: 1,
        suite: stub,
        metadata: { attempts: 2 },
      });
    });

    it("failed every time: one fail, earlier failures counted as reruns", () => {
      expect(find(results, stub, "TestFailedWithStderr")).toMatchObject({
        status: "fail",
        rerunCount: 2,
        metadata: { failureKind: "failure", attempts: 3 },
      });
      expect(find(results, stub, "TestNestedWithFailure/c")).toMatchObject({ status: "fail", rerunCount: 0 });
    });

    it("TestMain has an empty classname: path falls back to the package suite", () => {
      const badmain = "github.com/gotestyourself/gotestyourself/testjson/internal/badmain";
      expect(find(results, badmain, "TestMain")).toMatchObject({ status: "fail", suite: undefined });
      expect(find(results, badmain, "TestMain").failureDetails).toBe(
        `Failed\n\nsometimes main can exit 2\nFAIL\t${badmain}\t0.010s`,
      );
    });

    it("Go's zero time is no start time", () => {
      expect(results.every((r) => r.startedAt === undefined)).toBe(true);
    });
  });
});

describe("parseJunit: nested suites", () => {
  it("walks every level; without classname or file the path is the innermost suite", () => {
    const results = parseJunit(nested);
    expect(results.map((r) => [r.path, r.name, r.status, r.durationMs])).toEqual([
      ["packet", "A", "fail", 50_000],
      ["TestA", "A", "fail", 10_000],
      ["TestA", "B", "pass", 20_000],
      ["TestB", "A", "pass", 30_000],
      ["TestB", "B", "fail", 40_000],
    ]);
  });

  it("bun: file attributes inside nested describe suites; the describe path qualifies the name as in jest", () => {
    expect(parseJunit(bunNested).map((r) => [r.path, r.name, r.suite, r.status])).toEqual([
      ["math.test.ts", "top-level", undefined, "pass"],
      ["math.test.ts", "add passes", "add", "pass"],
      ["math.test.ts", "negative &gt; add fails", "negative &gt; add", "fail"],
    ]);
  });
});

describe("parseJunit: attributes and text", () => {
  it("a testcase timestamp wins over its suite's", () => {
    const [own, inherited] = parseJunit(
      '<testsuite name="s" timestamp="2024-05-01T10:00:00"><testcase name="a" timestamp="2024-05-01T10:00:05.250+02:00"/><testcase name="b"/></testsuite>',
    );
    expect(own!.startedAt).toBe("2024-05-01T08:00:05.250Z");
    expect(inherited!.startedAt).toBe("2024-05-01T10:00:00.000Z");
  });

  it("times with thousands separators (junitparser's locale test case) and nonsense times", () => {
    const results = parseJunit(
      '<testsuite name="pytest"><testcase classname="test_x" file="test_x.py" name="test_comp_1" time="1,000.025"/>' +
        '<testcase classname="test_x" name="b" time="abc"/><testcase classname="test_x" name="c" time=""/>' +
        '<testcase classname="test_x" name="d" time="Infinity"/><testcase classname="test_x" name="e" time="1.5e-2"/></testsuite>',
    );
    expect(results.map((r) => r.durationMs)).toEqual([1_000_025, undefined, undefined, undefined, 15]);
  });

  it("<error> is a fail with failureKind error; a failure beats a skip", () => {
    const [error, both] = parseJunit(
      '<testsuite name="s"><testcase classname="c" name="boom"><error message="failed on setup" type="RuntimeError">E   RuntimeError</error></testcase>' +
        '<testcase classname="c" name="teardown"><skipped message="no"/><error message="teardown failed"/></testcase></testsuite>',
    );
    expect(error).toMatchObject({
      status: "fail",
      failureDetails: "failed on setup\n\nE   RuntimeError",
      metadata: { failureKind: "error", failureType: "RuntimeError" },
    });
    expect(both).toMatchObject({ status: "fail", metadata: { failureKind: "error" } });
  });

  it("decodes each character reference once and no entity beyond XML's own", () => {
    const [result] = parseJunit(
      '<testsuite name="s"><testcase classname="c" name="a &amp; b"><failure message="x&#10;y &#x41; &amp;#10; &copy;">t&lt;&#9;u</failure></testcase></testsuite>',
    );
    expect(result!.name).toBe("a & b");
    expect(result!.failureDetails).toBe("x\ny A &#10; &copy;\n\nt<\tu");
  });

  it("CDATA and text pieces are joined as written", () => {
    const [result] = parseJunit(
      '<testsuite name="s"><testcase classname="c" name="a"><failure><![CDATA[if (a < b) {]]> and more</failure></testcase></testsuite>',
    );
    expect(result!.failureDetails).toBe("if (a < b) { and more");
  });
});

describe("parseJunit: refusals", () => {
  it("a malformed document says where it broke", () => {
    const unclosed = parseError(malformedUnclosed);
    expect(unclosed.message).toBe(
      "malformed XML at line 6, column 3: Expected closing tag 'failure' (opened in line 5, col 5) instead of closing tag 'testcase'.",
    );
    expect([unclosed.line, unclosed.column]).toEqual([6, 3]);

    const truncated = parseError(malformedTruncated);
    expect(truncated.message).toMatch(/^malformed XML at line 5, column \d+: /);
    expect(truncated.line).toBe(5);
  });

  it("a document without a single testcase", () => {
    expect(parseError(gotestsumEmpty).message).toBe("no test cases found");
    expect(parseError('<testsuite name="empty" tests="0"/>').message).toBe("no test cases found");
  });

  it("a document that is not JUnit", () => {
    expect(parseError('<assemblies><assembly name="x"/></assemblies>').message).toMatch(/root element is <assemblies>/);
    expect(parseError("").message).toMatch(/^malformed XML at line 1/);
  });

  it("billion laughs: a DOCTYPE declaring entities is refused before anything is expanded", () => {
    expect(parseError(billionLaughs).message).toBe("a DOCTYPE with entity declarations is not allowed");
  });

  it("external entities and entity declarations hidden from the prolog scan are refused too", () => {
    expect(
      parseError(
        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><testsuite>&x;</testsuite>',
      ).message,
    ).toMatch(/DOCTYPE with entity declarations/);
    // An element-like comment ahead of the declaration defeats the prolog scan; the parser's decoder still refuses.
    expect(
      parseError(
        '<!DOCTYPE t [<!-- <x> --><!ENTITY a "aaaa">]><testsuite><testcase name="t">&a;</testcase></testsuite>',
      ).message,
    ).toBe("a DOCTYPE with entity declarations is not allowed");
  });

  it("a DOCTYPE without declarations is harmless and allowed", () => {
    expect(
      parseJunit('<!DOCTYPE testsuite SYSTEM "junit.dtd"><testsuite name="s"><testcase name="t"/></testsuite>'),
    ).toHaveLength(1);
  });
});

describe("parseJunit: size", () => {
  it("parses a valid report of 10,000 testcases", () => {
    const cases = Array.from(
      { length: 10_000 },
      (_, i) =>
        `<testcase classname="pkg.Class${i % 100}" name="test_${i}[case-${i}]" time="0.${String(i % 1000).padStart(3, "0")}">` +
        (i % 10 === 0 ? `<failure message="boom &amp; bust">trace line ${i}\n  at f (a.js:1:2)</failure>` : "") +
        "</testcase>",
    );
    const xml = `<?xml version="1.0" encoding="UTF-8"?><testsuites><testsuite name="big" timestamp="2024-01-01T00:00:00">${cases.join("\n")}</testsuite></testsuites>`;
    const results = parseJunit(xml);
    expect(results).toHaveLength(10_000);
    expect(counts(results)).toEqual({ pass: 9_000, fail: 1_000, skip: 0 });
    expect(results[9_999]).toMatchObject({ path: "pkg.Class99", name: "test_9999[case-9999]", durationMs: 999 });
  });
});
