import { createHmac } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CiInfo, detectCi } from "../../tools/uploader/ci-env.ts";
import { countTestcases, escapedLength, splitJUnitXml } from "../../tools/uploader/junit-split.ts";
import { type PayloadFields, planParts, type UploadGroup } from "../../tools/uploader/parts.ts";
import { resolveRunContext } from "../../tools/uploader/run-context.ts";
import { backoffDelay, parseRetryAfter } from "../../tools/uploader/send.ts";
import { decodeWebhookSecret, SecretFormatError, signedHeaders, signV1, signV2 } from "../../tools/uploader/sign.ts";
import { UploadError, type UploadOptions, upload } from "../../tools/uploader/upload.ts";
import { type CliRun, runUploadCli } from "./uploader-cli.ts";

const REPO_ID = "6b1f3c9e-1111-4222-8333-944445555666";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const KEY_BYTES = Buffer.from("anchorpipe-uploader-test-key-32b");
const SECRET = `whsec_${KEY_BYTES.toString("base64")}`;

const silent = {
  start() {},
  retry() {},
  done() {},
  info() {},
  warn() {},
  error() {},
  finish() {},
};

// ---------------------------------------------------------------------------------------------------------

describe("CI detection", () => {
  const cases: Array<[string, Record<string, string>, CiInfo]> = [
    [
      "GitHub Actions, push",
      {
        GITHUB_ACTIONS: "true",
        GITHUB_SHA: COMMIT,
        GITHUB_REF: "refs/heads/main",
        GITHUB_REF_NAME: "main",
        GITHUB_HEAD_REF: "",
        GITHUB_RUN_ID: "9876",
        GITHUB_RUN_ATTEMPT: "1",
      },
      { provider: "github-actions", commit: COMMIT, branch: "main", pullRequest: undefined, runId: "9876-1" },
    ],
    [
      "GitHub Actions, pull request",
      {
        GITHUB_ACTIONS: "true",
        GITHUB_SHA: COMMIT,
        GITHUB_REF: "refs/pull/42/merge",
        GITHUB_REF_NAME: "42/merge",
        GITHUB_HEAD_REF: "feature/x",
        GITHUB_RUN_ID: "9876",
        GITHUB_RUN_ATTEMPT: "3",
      },
      { provider: "github-actions", commit: COMMIT, branch: "feature/x", pullRequest: "42", runId: "9876-3" },
    ],
    [
      "GitHub Actions, tag",
      {
        GITHUB_ACTIONS: "true",
        GITHUB_SHA: COMMIT,
        GITHUB_REF: "refs/tags/v1.2.0",
        GITHUB_REF_NAME: "v1.2.0",
        GITHUB_RUN_ID: "5",
      },
      { provider: "github-actions", commit: COMMIT, branch: undefined, pullRequest: undefined, runId: "5" },
    ],
    [
      "GitLab CI, merge request",
      {
        GITLAB_CI: "true",
        CI_COMMIT_SHA: COMMIT,
        CI_COMMIT_REF_NAME: "feature/y",
        CI_MERGE_REQUEST_IID: "17",
        CI_PIPELINE_ID: "5555",
        CI_JOB_ID: "777",
      },
      { provider: "gitlab", commit: COMMIT, branch: "feature/y", pullRequest: "17", runId: "5555" },
    ],
    [
      "GitLab CI, branch pipeline without pipeline id",
      { GITLAB_CI: "true", CI_COMMIT_SHA: COMMIT, CI_COMMIT_REF_NAME: "main", CI_JOB_ID: "777" },
      { provider: "gitlab", commit: COMMIT, branch: "main", pullRequest: undefined, runId: "777" },
    ],
    [
      "Buildkite, no pull request",
      {
        BUILDKITE: "true",
        BUILDKITE_COMMIT: COMMIT,
        BUILDKITE_BRANCH: "main",
        BUILDKITE_PULL_REQUEST: "false",
        BUILDKITE_BUILD_ID: "0190-build",
        BUILDKITE_JOB_ID: "0190-job",
      },
      { provider: "buildkite", commit: COMMIT, branch: "main", pullRequest: undefined, runId: "0190-build" },
    ],
    [
      "Buildkite, pull request",
      {
        BUILDKITE: "true",
        BUILDKITE_COMMIT: COMMIT,
        BUILDKITE_BRANCH: "fix",
        BUILDKITE_PULL_REQUEST: "88",
        BUILDKITE_JOB_ID: "j",
      },
      { provider: "buildkite", commit: COMMIT, branch: "fix", pullRequest: "88", runId: "j" },
    ],
    [
      "CircleCI",
      {
        CIRCLECI: "true",
        CIRCLE_SHA1: COMMIT,
        CIRCLE_BRANCH: "topic",
        CIRCLE_PULL_REQUEST: "https://github.com/acme/app/pull/123",
        CIRCLE_WORKFLOW_ID: "wf-uuid",
        CIRCLE_BUILD_NUM: "44",
      },
      { provider: "circleci", commit: COMMIT, branch: "topic", pullRequest: "123", runId: "wf-uuid" },
    ],
    [
      "Jenkins, GIT_BRANCH with origin/",
      { JENKINS_URL: "https://ci.example/", GIT_COMMIT: COMMIT, GIT_BRANCH: "origin/release", BUILD_NUMBER: "12" },
      { provider: "jenkins", commit: COMMIT, branch: "release", pullRequest: undefined, runId: "12" },
    ],
    [
      "Jenkins multibranch pull request",
      {
        JENKINS_URL: "https://ci.example/",
        GIT_COMMIT: COMMIT,
        BRANCH_NAME: "PR-9",
        CHANGE_ID: "9",
        CHANGE_BRANCH: "feature/z",
        BUILD_TAG: "jenkins-app-PR-9-3",
        BUILD_NUMBER: "3",
      },
      { provider: "jenkins", commit: COMMIT, branch: "feature/z", pullRequest: "9", runId: "jenkins-app-PR-9-3" },
    ],
    ["no CI", { HOME: "/root", CI: "true" }, { provider: null }],
  ];

  it.each(cases)("%s", (_name, env, expected) => {
    expect(detectCi(env)).toEqual(expected);
  });

  it("flags override what the CI says, blank flags do not", () => {
    const env = cases[1]![1];
    const resolved = resolveRunContext({ commit: "f".repeat(40), branch: "  ", runId: "manual-1" }, env);
    expect(resolved).toEqual({
      provider: "github-actions",
      commit: "f".repeat(40),
      branch: "feature/x",
      pullRequest: "42",
      runId: "manual-1",
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("signing", () => {
  it("reproduces the Standard Webhooks reference vector", () => {
    // standard-webhooks/standard-webhooks, libraries/javascript/src/webhook.test.ts, "sign function works".
    const key = decodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    expect(signV2(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')).toBe(
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
  });

  it("v2 signs '{id}.{timestamp}.{body}' with the decoded key", () => {
    const body = Buffer.from('{"a":"ü","b":[1,2]}');
    const expected = createHmac("sha256", KEY_BYTES)
      .update(Buffer.concat([Buffer.from("ap_key.1700000000."), body]))
      .digest("base64");
    expect(signV2(decodeWebhookSecret(SECRET), "ap_key", 1700000000, body)).toBe(`v1,${expected}`);
  });

  it("v1 is lowercase hex HMAC of the body keyed with the secret's UTF-8 bytes", () => {
    // RFC 4231 test case 2.
    expect(signV1("Jefe", "what do ya want for nothing?")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    const body = Buffer.from('{"tests":[{"name":"é"}]}');
    expect(signV1(SECRET, body)).toBe(createHmac("sha256", Buffer.from(SECRET, "utf8")).update(body).digest("hex"));
  });

  it("builds the headers of each scheme", () => {
    const body = Buffer.from("{}");
    const v2 = signedHeaders({
      scheme: "v2",
      secret: SECRET,
      repoId: REPO_ID,
      id: "ap_1",
      body,
      timestamp: 1700000000,
    });
    expect(v2).toEqual({
      authorization: `Bearer ${REPO_ID}`,
      "content-type": "application/json",
      "webhook-id": "ap_1",
      "webhook-timestamp": "1700000000",
      "webhook-signature": signV2(KEY_BYTES, "ap_1", 1700000000, body),
    });
    const v1 = signedHeaders({ scheme: "v1", secret: SECRET, repoId: REPO_ID, id: "ap_1", body, timestamp: 0 });
    expect(v1).toEqual({
      authorization: `Bearer ${REPO_ID}`,
      "content-type": "application/json",
      "x-fr-sig": signV1(SECRET, body),
    });
  });

  it("rejects a non-whsec secret for v2 without echoing it", () => {
    for (const secret of ["plain-v1-secret-value", "whsec_", "whsec_not*base64!"]) {
      let error: unknown;
      try {
        decodeWebhookSecret(secret);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SecretFormatError);
      expect((error as Error).message).not.toContain(secret.slice(6) || "\u0000");
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

const FIELDS: PayloadFields = { repo_id: REPO_ID, commit_sha: COMMIT, run_id: "run-1", framework: "junit" };

interface Case {
  classname: string;
  name: string;
  kind: "pass" | "fail" | "skip";
  out: number;
}

function testcase(c: Case): string {
  const attrs = `classname="${c.classname}" name="${c.name}" time="0.01"`;
  const out = c.out > 0 ? `<system-out><![CDATA[${"o".repeat(c.out)} <testcase name="in-cdata"/>]]></system-out>` : "";
  if (c.kind === "fail") {
    return `<testcase ${attrs}><failure message="a &lt; b" type="AssertionError">expected 1 &gt; 2 "quoted"\n  at line 3</failure>${out}</testcase>`;
  }
  if (c.kind === "skip") return `<testcase ${attrs}><skipped type="pytest.xfail"/>${out}</testcase>`;
  return out ? `<testcase ${attrs}>${out}</testcase>` : `<testcase ${attrs}/>`;
}

interface Suite {
  name: string;
  cases: Case[];
  nested?: Suite[];
  log?: number;
}

function suiteXml(s: Suite): string {
  const inner = [
    `<properties><property name="suite" value="${s.name}"/></properties>`,
    ...s.cases.map(testcase),
    ...(s.nested ?? []).map(suiteXml),
    s.log ? `<system-out>${"l".repeat(s.log)}</system-out>` : "",
  ];
  return `<testsuite name="${s.name}" tests="${s.cases.length}" timestamp="2026-03-01T10:00:00" note='a > b'>\n${inner.join("\n")}\n</testsuite>`;
}

function junitDocument(suites: Suite[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<!-- generated -->\n<testsuites name="all">\n${suites.map(suiteXml).join("\n")}\n</testsuites>\n`;
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@_", isArray: () => true });

/** Every testcase in a parsed document as "suite-path | classname | name | kind", in document order. */
function testcasesOf(xml: string): string[] {
  const found: string[] = [];
  const walk = (node: unknown, suites: string[]) => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n, suites);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === "testsuite") {
        for (const s of value as Array<Record<string, unknown>>) walk(s, [...suites, String(s["@_name"])]);
      } else if (key === "testcase") {
        for (const t of value as Array<Record<string, unknown>>) {
          const kind = "failure" in t ? "fail" : "skipped" in t ? "skip" : "pass";
          found.push(`${suites.join("/")} | ${t["@_classname"]} | ${t["@_name"]} | ${kind}`);
        }
      } else if (key !== "system-out" && key !== "properties") {
        walk(value, suites);
      }
    }
  };
  walk(parser.parse(xml), []);
  return found;
}

/** Suite name → its start tag's attributes, from every document. */
function suiteAttributes(xml: string): Map<string, Record<string, unknown>> {
  const map = new Map<string, Record<string, unknown>>();
  const walk = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== "object" || node === null) return;
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === "testsuite") {
        for (const s of value as Array<Record<string, unknown>>) {
          const attrs = Object.fromEntries(Object.entries(s).filter(([k]) => k.startsWith("@_")));
          const props = s.properties;
          map.set(String(s["@_name"]), { ...attrs, properties: JSON.stringify(props) });
          walk(s);
        }
      } else if (typeof value === "object") walk(value);
    }
  };
  walk(parser.parse(xml));
  return map;
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("utf8");
}

function sorted(items: string[]): string[] {
  return [...items].sort();
}

function bigSuites(): Suite[] {
  const suites: Suite[] = [];
  for (let s = 0; s < 6; s++) {
    const cases: Case[] = [];
    for (let c = 0; c < 40; c++) {
      cases.push({
        classname: `pkg${s}.Mod`,
        name: `test_${c}[param-${c % 3}]`,
        kind: c % 9 === 0 ? "fail" : c % 11 === 0 ? "skip" : "pass",
        out: c % 5 === 0 ? 300 : 0,
      });
    }
    // gotestsum --rerun-fails: later attempts of test_0 appear as their own testcases at the end of the suite.
    cases.push({ classname: `pkg${s}.Mod`, name: "test_0[param-0]", kind: "pass", out: 0 });
    suites.push({
      name: `suite-${s}`,
      cases,
      log: s === 2 ? 2000 : 0,
      nested:
        s === 3
          ? [{ name: "suite-3-inner", cases: cases.slice(0, 10).map((c) => ({ ...c, classname: "inner" })) }]
          : [],
    });
  }
  return suites;
}

describe("splitting", () => {
  it("splits test arrays by result count, in order", () => {
    const tests = Array.from({ length: 25_000 }, (_, i) => ({
      value: { path: "a.test.ts", name: `t${i}`, status: "pass", startedAt: "2026-03-01T10:00:00Z" },
      source: "results.json",
    }));
    const { parts } = planParts([{ kind: "tests", fields: FIELDS, items: tests }], {
      maxResults: 10_000,
      maxBytes: 5 << 20,
    });
    expect(parts.map((p) => p.results)).toEqual([10_000, 10_000, 5_000]);
    const names = parts.flatMap((p) => JSON.parse(text(p.body)).tests.map((t: { name: string }) => t.name));
    expect(names).toEqual(tests.map((t) => t.value.name));
    for (const p of parts) {
      const body = JSON.parse(text(p.body));
      expect(body.idempotency_key).toBe(p.key);
      expect(body).toMatchObject({ repo_id: REPO_ID, commit_sha: COMMIT, run_id: "run-1" });
    }
  });

  it("splits test arrays by bytes", () => {
    const tests = Array.from({ length: 300 }, (_, i) => ({
      value: {
        path: "p",
        name: `t${i}`,
        status: "fail",
        startedAt: "2026-03-01T10:00:00Z",
        failureDetails: "é\n".repeat(1500),
      },
      source: "r.json",
    }));
    const maxBytes = 100 * 1024;
    const { parts } = planParts([{ kind: "tests", fields: FIELDS, items: tests }], { maxResults: 10_000, maxBytes });
    expect(parts.length).toBeGreaterThan(5);
    for (const p of parts) expect(p.body.length).toBeLessThanOrEqual(maxBytes);
    expect(parts.reduce((n, p) => n + p.results, 0)).toBe(300);
    // Greedy: no part could have taken the next part's first result.
    for (let i = 0; i + 1 < parts.length; i++) {
      const next = JSON.stringify(JSON.parse(text(parts[i + 1]!.body)).tests[0]);
      expect(parts[i]!.body.length + Buffer.byteLength(next) + 1).toBeGreaterThan(maxBytes - 300);
    }
  });

  it("puts at most 100 report files in one body", () => {
    const reports = Array.from({ length: 250 }, (_, i) => ({
      value: {
        format: "junit",
        content: junitDocument([
          { name: `s${i}`, cases: [{ classname: "c", name: "t", kind: "pass" as const, out: 0 }] },
        ]),
      },
      source: `r${i}.xml`,
    }));
    const { parts } = planParts([{ kind: "reports", fields: FIELDS, items: reports }], {
      maxResults: 10_000,
      maxBytes: 5 << 20,
    });
    expect(parts.map((p) => JSON.parse(text(p.body)).reports.length)).toEqual([100, 100, 50]);
    expect(parts[2]!.sources).toEqual(reports.slice(200).map((r) => r.source));
  });

  it("cuts one large JUnit file into valid documents holding every testcase exactly once", () => {
    const suites = bigSuites();
    const xml = junitDocument(suites);
    const original = testcasesOf(xml);
    expect(countTestcases(xml)).toBe(original.length);
    const maxBytes = 8 * 1024;
    const { documents, warnings } = splitJUnitXml(xml, { maxBytes, maxResults: 50 }, "big.xml");
    expect(warnings).toEqual([]);
    expect(documents.length).toBeGreaterThan(4);

    const originalSuites = suiteAttributes(xml);
    const seen: string[] = [];
    for (const doc of documents) {
      expect(XMLValidator.validate(doc.content)).toBe(true);
      expect(escapedLength(doc.content)).toBeLessThanOrEqual(maxBytes);
      expect(doc.results).toBeLessThanOrEqual(50);
      expect(doc.content.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
      const cases = testcasesOf(doc.content);
      expect(cases.length).toBe(doc.results);
      seen.push(...cases);
      for (const [name, attrs] of suiteAttributes(doc.content)) expect(attrs).toEqual(originalSuites.get(name));
      // Both attempts of the rerun test are in the same document.
      for (const s of suites) {
        const attempts = cases.filter((c) => c.includes(`| pkg${s.name.slice(6)}.Mod | test_0[param-0] |`));
        expect([0, 2]).toContain(attempts.length);
      }
    }
    expect(sorted(seen)).toEqual(sorted(original));
    // The suite-level log went along, once.
    expect(documents.filter((d) => d.content.includes("l".repeat(2000)))).toHaveLength(1);
  });

  it("keeps any generated JUnit document intact when cutting it (property)", () => {
    const caseArb = fc.record({
      classname: fc.constantFrom("a.B", "c.D", "e&amp;f"),
      name: fc.constantFrom("t1", "t2", "t3 [x]", "t4 &lt;y&gt;", "t5", "t6"),
      kind: fc.constantFrom("pass" as const, "fail" as const, "skip" as const),
      out: fc.constantFrom(0, 0, 0, 50, 700),
    });
    const suiteArb = fc.record({
      name: fc.string({ unit: fc.constantFrom("a", "b", "z", "-", "1"), minLength: 1, maxLength: 6 }),
      cases: fc.array(caseArb, { maxLength: 30 }),
      log: fc.constantFrom(0, 0, 400),
    });
    const docArb = fc.record({
      suites: fc.uniqueArray(suiteArb, { minLength: 1, maxLength: 5, selector: (s) => s.name }),
      nestedInFirst: fc.boolean(),
      maxBytes: fc.integer({ min: 3000, max: 20_000 }),
      maxResults: fc.integer({ min: 2, max: 40 }),
    });
    fc.assert(
      fc.property(docArb, ({ suites, nestedInFirst, maxBytes, maxResults }) => {
        const shaped: Suite[] =
          nestedInFirst && suites.length > 1
            ? [{ ...suites[0]!, nested: suites.slice(1).map((s) => ({ ...s, name: `${suites[0]!.name}>${s.name}` })) }]
            : suites;
        // Attempts of one test stay in one document, so one identity must fit within maxResults.
        const attempts = new Map<string, number>();
        for (const s of suites) {
          for (const c of s.cases) {
            const id = `${s.name}|${c.classname}|${c.name}`;
            attempts.set(id, (attempts.get(id) ?? 0) + 1);
          }
        }
        fc.pre(Math.max(0, ...attempts.values()) <= maxResults);
        const xml = junitDocument(shaped);
        const { documents } = splitJUnitXml(xml, { maxBytes, maxResults }, "gen.xml");
        const seen: string[] = [];
        for (const doc of documents) {
          expect(XMLValidator.validate(doc.content)).toBe(true);
          expect(escapedLength(doc.content)).toBeLessThanOrEqual(maxBytes);
          expect(doc.results).toBeLessThanOrEqual(maxResults);
          const cases = testcasesOf(doc.content);
          expect(cases).toHaveLength(doc.results);
          seen.push(...cases);
        }
        expect(sorted(seen)).toEqual(sorted(testcasesOf(xml)));
      }),
      { numRuns: 60 },
    );
  });

  it("drops the captured output of a testcase too large for one upload, and says so", () => {
    const xml = junitDocument([
      {
        name: "s",
        cases: [
          { classname: "c", name: "huge", kind: "fail", out: 20_000 },
          { classname: "c", name: "small", kind: "pass", out: 0 },
        ],
      },
    ]);
    const { documents, warnings } = splitJUnitXml(xml, { maxBytes: 4096, maxResults: 100 }, "log.xml");
    expect(warnings.join("\n")).toMatch(/log\.xml: testcase "huge": left out \d+ bytes of system-out/);
    const all = documents.map((d) => d.content).join("");
    expect(sorted(documents.flatMap((d) => testcasesOf(d.content)))).toEqual([
      "s | c | huge | fail",
      "s | c | small | pass",
    ]);
    expect(all).toContain("expected 1 &gt; 2");
  });

  it("splits inside planParts, keeps every body under the limit and gives deterministic keys", () => {
    const xml = junitDocument(bigSuites());
    const small = junitDocument([{ name: "other", cases: [{ classname: "x", name: "y", kind: "pass", out: 0 }] }]);
    const group = (content: string, runId = "run-1"): UploadGroup => ({
      kind: "reports",
      fields: { ...FIELDS, run_id: runId },
      items: [
        { value: { format: "junit", content: small }, source: "small.xml" },
        { value: { format: "junit", content }, source: "big.xml" },
      ],
    });
    const limits = { maxResults: 10_000, maxBytes: 16 * 1024 };
    const a = planParts([group(xml)], limits);
    const b = planParts([group(xml)], limits);
    expect(a.parts.length).toBeGreaterThan(2);
    expect(a.parts.map((p) => p.key)).toEqual(b.parts.map((p) => p.key));
    expect(new Set(a.parts.map((p) => p.key)).size).toBe(a.parts.length);
    for (const p of a.parts) {
      expect(p.body.length).toBeLessThanOrEqual(limits.maxBytes);
      expect(p.key).toMatch(/^ap_[0-9a-f]{64}$/);
      const body = JSON.parse(text(p.body));
      for (const r of body.reports) expect(XMLValidator.validate(r.content)).toBe(true);
    }
    const total = a.parts.flatMap((p) =>
      JSON.parse(text(p.body)).reports.flatMap((r: { content: string }) => testcasesOf(r.content)),
    );
    expect(sorted(total)).toEqual(sorted([...testcasesOf(small), ...testcasesOf(xml)]));

    // Another run, or changed content, gives other keys.
    const otherRun = planParts([group(xml, "run-2")], limits);
    expect(otherRun.parts.map((p) => p.key).some((k) => a.parts.some((p) => p.key === k))).toBe(false);
    const changed = planParts([group(xml.replace("test_39[param-0]", "test_39[param-x]"))], limits);
    const same = changed.parts.filter((p, i) => p.key === a.parts[i]?.key).length;
    expect(same).toBe(a.parts.length - 1);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("retry timing", () => {
  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("3", 0)).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter("soon", 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });

  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelay(0, 1000, 30_000, () => 0)).toBe(500);
    expect(backoffDelay(0, 1000, 30_000, () => 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 30_000, () => 1)).toBe(8000);
    expect(backoffDelay(10, 1000, 30_000, () => 1)).toBe(30_000);
  });
});

// ---------------------------------------------------------------------------------------------------------

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

type Answer = { status: number; headers?: Record<string, string>; body?: unknown };

async function startServer(answer: (req: Received, n: number) => Answer) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: Received = { headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      received.push(r);
      const a = answer(r, received.length);
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
      res.end(a.body === undefined ? "" : JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function accepted(req: Received, duplicate = false): Answer {
  const body = JSON.parse(req.body.toString());
  return {
    status: 200,
    body: {
      runId: body.run_id,
      ingestionId: "11111111-2222-4333-8444-555555555555",
      message: "Test report received",
      summary: { tests_parsed: 3, tests_failed: 1, tests_skipped: 0, flaky_candidates: 0 },
      isDuplicate: duplicate,
    },
  };
}

function errorBody(code: string, message: string) {
  return { error: { code, message, requestId: "req-1" } };
}

/** Verifies a v2 request the way the server will: over the raw bytes received. */
function v2Valid(r: Received): boolean {
  const id = String(r.headers["webhook-id"]);
  const ts = String(r.headers["webhook-timestamp"]);
  const mac = createHmac("sha256", KEY_BYTES)
    .update(Buffer.concat([Buffer.from(`${id}.${ts}.`), r.body]))
    .digest("base64");
  return (
    r.headers["webhook-signature"] === `v1,${mac}` &&
    Math.abs(Number(ts) - Date.now() / 1000) <= 300 &&
    r.headers.authorization === `Bearer ${REPO_ID}` &&
    r.headers["content-type"] === "application/json"
  );
}

let dir: string;
let report: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "anchorpipe-uploader-"));
  report = path.join(dir, "junit.xml");
  await writeFile(
    report,
    junitDocument([
      {
        name: "s",
        cases: [
          { classname: "c", name: "a", kind: "pass", out: 0 },
          { classname: "c", name: "b", kind: "fail", out: 0 },
          { classname: "c", name: "d", kind: "pass", out: 0 },
        ],
      },
    ]),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Run = CliRun;

async function runCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const run = await spawnCli(args, env);
  // Never printed, whatever happened.
  expect(run.stdout + run.stderr).not.toContain(SECRET);
  expect(run.stdout + run.stderr).not.toContain(SECRET.slice(6));
  return run;
}

function spawnCli(args: string[], env: Record<string, string>): Promise<Run> {
  return runUploadCli(args, { ANCHORPIPE_REPO_ID: REPO_ID, ANCHORPIPE_SECRET: SECRET, ...env }, dir);
}

const BASE_ARGS = ["--commit", COMMIT.toUpperCase(), "--run-id", "ci-42", "--retry-delay", "20"];

describe("sending (CLI against a local server)", () => {
  it("retries 503 twice, then succeeds with the same key and body, signed afresh", async () => {
    const server = await startServer((req, n) =>
      n <= 2 ? { status: 503, body: errorBody("service_unavailable", "db down") } : accepted(req),
    );
    try {
      const run = await runCli(["--url", server.url, "junit.xml", ...BASE_ARGS]);
      expect(run.code, run.stderr).toBe(0);
      expect(server.received).toHaveLength(3);
      const [first, ...rest] = server.received;
      for (const r of server.received) expect(v2Valid(r)).toBe(true);
      for (const r of rest) {
        expect(r.headers["webhook-id"]).toBe(first!.headers["webhook-id"]);
        expect(r.body.equals(first!.body)).toBe(true);
      }
      const body = JSON.parse(first!.body.toString());
      expect(body).toMatchObject({ repo_id: REPO_ID, commit_sha: COMMIT, run_id: "ci-42", framework: "junit" });
      expect(body.idempotency_key).toBe(first!.headers["webhook-id"]);
      expect(body.reports).toHaveLength(1);
      expect(run.stdout).toContain("HTTP 503, retrying");
      expect(run.stdout).toMatch(/part 1\/1: 3 tests parsed, 1 failed, 0 skipped/);
    } finally {
      await server.close();
    }
  });

  it("does not retry a 401 and exits 1, with or without --strict", async () => {
    const server = await startServer(() => ({ status: 401, body: errorBody("unauthorized", "invalid signature") }));
    try {
      const run = await runCli(["--url", server.url, "junit.xml", ...BASE_ARGS]);
      expect(run.code).toBe(1);
      expect(server.received).toHaveLength(1);
      expect(run.stderr).toContain("rejected: HTTP 401 unauthorized: invalid signature (request req-1)");
    } finally {
      await server.close();
    }
  });

  it("exits 0 with a warning when the service is unreachable, 2 with --strict", async () => {
    // A port that was just free: nothing listens there.
    const probe = await startServer(() => ({ status: 200 }));
    await probe.close();
    const args = ["--url", probe.url, "junit.xml", ...BASE_ARGS, "--retries", "1"];

    const lenient = await runCli(args);
    expect(lenient.code).toBe(0);
    expect(lenient.stderr).toContain("ECONNREFUSED");
    expect(lenient.stderr).toContain("Not failing the build");

    const strict = await runCli([...args, "--strict"]);
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain("failing because of --strict");
  });

  it("exits 0 when 5xx persists after the retries, 2 with --strict", async () => {
    const server = await startServer(() => ({ status: 500, body: errorBody("internal_error", "boom") }));
    try {
      const lenient = await runCli(["--url", server.url, "junit.xml", ...BASE_ARGS, "--retries", "2"]);
      expect(lenient.code).toBe(0);
      expect(server.received).toHaveLength(3);
      const strict = await runCli(["--url", server.url, "junit.xml", ...BASE_ARGS, "--retries", "0", "--strict"]);
      expect(strict.code).toBe(2);
      expect(server.received).toHaveLength(4);
    } finally {
      await server.close();
    }
  });

  it("signs v1 over the exact body and carries the key in the body", async () => {
    const server = await startServer((req) => accepted(req));
    try {
      const run = await runCli(["--url", server.url, "junit.xml", ...BASE_ARGS, "--signature", "v1"]);
      expect(run.code, run.stderr).toBe(0);
      const [r] = server.received;
      expect(r!.headers["x-fr-sig"]).toBe(createHmac("sha256", SECRET).update(r!.body).digest("hex"));
      expect(r!.headers["webhook-signature"]).toBeUndefined();
      expect(JSON.parse(r!.body.toString()).idempotency_key).toMatch(/^ap_[0-9a-f]{64}$/);
    } finally {
      await server.close();
    }
  });

  it("sends split parts with stable keys: a re-run is reported as duplicates", async () => {
    await writeFile(path.join(dir, "big.xml"), junitDocument(bigSuites()));
    const stored = new Set<string>();
    const server = await startServer((req) => {
      const key = String(req.headers["webhook-id"]);
      const duplicate = stored.has(key);
      stored.add(key);
      return accepted(req, duplicate);
    });
    try {
      const args = ["--url", server.url, "big.xml", ...BASE_ARGS, "--max-bytes", "16KiB"];
      const first = await runCli(args);
      expect(first.code, first.stderr).toBe(0);
      const parts = server.received.length;
      expect(parts).toBeGreaterThan(2);
      for (const r of server.received) {
        expect(r.body.length).toBeLessThanOrEqual(16 * 1024);
        expect(v2Valid(r)).toBe(true);
      }
      const second = await runCli(args);
      expect(second.code).toBe(0);
      expect(server.received).toHaveLength(parts * 2);
      expect(stored.size).toBe(parts);
      expect(second.stdout).toContain(`${parts}/${parts} parts uploaded (${parts} already received earlier)`);
    } finally {
      await server.close();
    }
  });

  it("fails clearly on a pattern that matches nothing, a missing commit, or a secret flag", async () => {
    const noMatch = await runCli(["reports/**/*.xml", ...BASE_ARGS, "--dry-run"]);
    expect(noMatch.code).toBe(1);
    expect(noMatch.stderr).toContain('no files match "reports/**/*.xml"');

    const noCommit = await runCli(["junit.xml", "--run-id", "1", "--dry-run"]);
    expect(noCommit.code).toBe(1);
    expect(noCommit.stderr).toContain("no commit SHA: pass --commit");

    const inGitlab = await runCli(["junit.xml", "--dry-run"], { GITLAB_CI: "true", CI_PIPELINE_ID: "3" });
    expect(inGitlab.code).toBe(1);
    expect(inGitlab.stderr).toContain("GitLab CI detected but CI_COMMIT_SHA is not set");

    const flag = await runCli(["junit.xml", `--secret=${SECRET}`]);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain("set ANCHORPIPE_SECRET instead");
  });

  it("prints a plan and sends nothing on --dry-run", async () => {
    const run = await runCli(["junit.xml", "--dry-run"], {
      ANCHORPIPE_SECRET: "",
      ANCHORPIPE_URL: "http://127.0.0.1:9",
      GITHUB_ACTIONS: "true",
      GITHUB_SHA: COMMIT,
      GITHUB_REF: "refs/pull/7/merge",
      GITHUB_HEAD_REF: "feat",
      GITHUB_RUN_ID: "100",
      GITHUB_RUN_ATTEMPT: "2",
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("dry run: would upload 3 results in 1 part");
    expect(run.stdout).toContain("branch feat, pull request 7, run 100-2, via GitHub Actions");
    expect(run.stdout).toMatch(/part 1\/1: key ap_[0-9a-f]{64}, reports, framework junit, 3 results/);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("upload() with JSON inputs", () => {
  const base = (over: Partial<UploadOptions>): UploadOptions => ({
    files: [],
    cwd: dir,
    repoId: REPO_ID,
    dryRun: true,
    reporter: silent,
    env: {},
    ...over,
  });

  it("merges a payload file under CI variables under flags", async () => {
    await writeFile(
      path.join(dir, "payload.json"),
      JSON.stringify({
        commit_sha: "a".repeat(40),
        run_id: "from-file",
        branch: "file-branch",
        framework: "jest",
        environment: { node: "22" },
        tests: [{ path: "x.test.ts", name: "works", status: "pass", startedAt: "2026-03-01T10:00:00Z" }],
      }),
    );
    const fromFile = await upload(base({ files: ["payload.json"] }));
    const captured: Buffer[] = [];
    const send = async (options: UploadOptions) => {
      const outcome = await upload({
        ...options,
        dryRun: false,
        secret: SECRET,
        fetch: async (_url, init) => {
          captured.push(Buffer.from(init?.body as Uint8Array));
          return new Response(JSON.stringify({ summary: {}, isDuplicate: false }), { status: 200 });
        },
      });
      return { outcome, body: JSON.parse(captured.at(-1)!.toString()) };
    };
    expect(fromFile.planned).toHaveLength(1);

    const plain = await send(base({ files: ["payload.json"] }));
    expect(plain.outcome.exitCode).toBe(0);
    expect(plain.body).toMatchObject({
      commit_sha: "a".repeat(40),
      run_id: "from-file",
      branch: "file-branch",
      framework: "jest",
      environment: { node: "22" },
    });

    const ci = await send(
      base({
        files: ["payload.json"],
        env: { CIRCLECI: "true", CIRCLE_SHA1: "B".repeat(40), CIRCLE_BRANCH: "ci-branch", CIRCLE_WORKFLOW_ID: "wf" },
        branch: "flag-branch",
        framework: "vitest",
      }),
    );
    expect(ci.body).toMatchObject({
      commit_sha: "b".repeat(40),
      run_id: "wf",
      branch: "flag-branch",
      framework: "vitest",
      environment: { node: "22" },
    });
  });

  it("stops after a part could not be delivered or the credentials were refused", async () => {
    await writeFile(path.join(dir, "parts.xml"), junitDocument(bigSuites()));
    const options = base({
      files: ["parts.xml"],
      commit: COMMIT,
      runId: "r",
      dryRun: false,
      secret: SECRET,
      maxBytes: 16 * 1024,
      retries: 2,
      retryDelayMs: 0,
    });
    let calls = 0;
    const down = await upload({
      ...options,
      fetch: async () => {
        calls++;
        throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      },
    });
    expect(down.planned.length).toBeGreaterThan(2);
    expect(calls).toBe(3);
    expect(down.parts.map((p) => p.status)).toEqual(["unavailable", ...Array(down.planned.length - 1).fill("skipped")]);
    expect(down.exitCode).toBe(0);
    const strict = await upload({
      ...options,
      strict: true,
      fetch: async () => {
        throw new TypeError("fetch failed");
      },
    });
    expect(strict.exitCode).toBe(2);

    calls = 0;
    const refused = await upload({
      ...options,
      fetch: async () => {
        calls++;
        return new Response(JSON.stringify(errorBody("unauthorized", "no")), { status: 401 });
      },
    });
    expect(calls).toBe(1);
    expect(refused.exitCode).toBe(1);
    expect(refused.parts[1]).toMatchObject({ status: "skipped" });
  });

  it("sends a bare array of results with CLI fields, and refuses unknown payload fields", async () => {
    await writeFile(
      path.join(dir, "array.json"),
      JSON.stringify([{ path: "p", name: "n", status: "fail", startedAt: "2026-03-01T10:00:00Z" }]),
    );
    const outcome = await upload(base({ files: ["array.json"], commit: COMMIT, runId: "r" }));
    expect(outcome.planned).toMatchObject([{ kind: "tests", results: 1 }]);

    await writeFile(path.join(dir, "odd.json"), JSON.stringify({ tests: [{}], surprise: 1 }));
    await expect(upload(base({ files: ["odd.json"], commit: COMMIT, runId: "r" }))).rejects.toThrow(
      /unknown top-level field\(s\) surprise/,
    );
    await expect(upload(base({ files: ["array.json"], commit: "abc123", runId: "r" }))).rejects.toThrow(UploadError);
  });
});

// ---------------------------------------------------------------------------------------------------------

/** upload() with an injected fetch that records what it was given and answers from a script. */
function scriptedFetch(answer: (call: number, init: RequestInit) => Response | Promise<Response>) {
  const calls: RequestInit[] = [];
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    calls.push(init ?? {});
    return answer(calls.length, init ?? {});
  };
  return { calls, fetch: fetch as typeof globalThis.fetch };
}

const ok = () =>
  new Response(JSON.stringify({ ingestionId: "i", summary: { tests_parsed: 1 }, isDuplicate: false }), { status: 200 });

const sending = (over: Partial<UploadOptions>): UploadOptions => ({
  files: ["junit.xml"],
  cwd: dir,
  repoId: REPO_ID,
  secret: SECRET,
  commit: COMMIT,
  runId: "r",
  reporter: silent,
  env: {},
  ...over,
});

describe("the contract, checked before anything is sent", () => {
  it("refuses a result the service would refuse, naming the file, the result and the field", async () => {
    await writeFile(
      path.join(dir, "statuses.json"),
      JSON.stringify([
        { path: "a.test.ts", name: "fine", status: "pass", startedAt: "2026-03-01T10:00:00Z" },
        { path: "a.test.ts", name: "odd", status: "flaky", startedAt: "2026-03-01T10:00:00Z", durationMs: -1 },
      ]),
    );
    const { calls, fetch } = scriptedFetch(ok);
    const attempt = upload(sending({ files: ["statuses.json"], fetch }));
    await expect(attempt).rejects.toThrow(UploadError);
    await expect(attempt).rejects.toThrow(
      /part 1\/1 \(from statuses\.json\) is not a valid upload, nothing was sent:\n {2}statuses\.json: test result 1: status: Invalid option: expected one of "pass"\|"fail"\|"skip"\n {2}statuses\.json: test result 1: durationMs: Too small/,
    );
    expect(calls).toHaveLength(0);
    // A dry run checks the same.
    await expect(upload(sending({ files: ["statuses.json"], dryRun: true }))).rejects.toThrow(/status: Invalid option/);
  });

  it("names top-level fields and where their values come from", async () => {
    await writeFile(
      path.join(dir, "fields.json"),
      JSON.stringify({
        framework: "cypress",
        environment: { node: 22 },
        branch: "x".repeat(256),
        tests: [{ path: "p", name: "n", status: "pass", startedAt: "2026-03-01T10:00:00Z" }],
      }),
    );
    const error = await upload(sending({ files: ["fields.json"], dryRun: true })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UploadError);
    const message = (error as Error).message;
    expect(message).toContain("framework: Invalid option: expected one of");
    expect(message).toContain("(--framework)");
    expect(message).toContain("branch: Too big: expected string to have <=255 characters (--branch");
    expect(message).toContain("environment.node: Invalid input: expected string, received number");

    const badCommit = upload(sending({ commit: "abc123", dryRun: true }));
    await expect(badCommit).rejects.toThrow(
      "commit_sha: must be 40 hexadecimal characters (--commit or the CI's commit variable)",
    );
    await writeFile(path.join(dir, "typed.json"), JSON.stringify({ run_id: 42, tests: [{}] }));
    await expect(upload(sending({ files: ["typed.json"], runId: undefined, dryRun: true }))).rejects.toThrow(
      "typed.json: run_id: Invalid input: expected string, received number",
    );
  });

  it("an invalid result in the last part stops the whole upload before the first part goes out", async () => {
    const tests = Array.from({ length: 30 }, (_, i) => ({
      path: "p",
      name: `t${i}`,
      status: i === 29 ? "passed" : "pass",
      startedAt: "2026-03-01T10:00:00Z",
    }));
    await writeFile(path.join(dir, "late.json"), JSON.stringify(tests));
    const { calls, fetch } = scriptedFetch(ok);
    await expect(upload(sending({ files: ["late.json"], maxResults: 10, fetch }))).rejects.toThrow(
      /part 3\/3 \(from late\.json\) is not a valid upload, nothing was sent:\n {2}late\.json: test result 29: status:/,
    );
    expect(calls).toHaveLength(0);
  });

  it("the CLI exits 1 with the field in the message, and the server receives nothing", async () => {
    await writeFile(
      path.join(dir, "unstorable.json"),
      JSON.stringify([{ path: "p", name: "nul\u0000byte", status: "pass", startedAt: "2026-03-01T10:00:00Z" }]),
    );
    const server = await startServer((req) => accepted(req));
    try {
      const run = await runCli(["--url", server.url, "unstorable.json", ...BASE_ARGS]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("anchorpipe: error: part 1/1 (from unstorable.json) is not a valid upload");
      expect(run.stderr).toContain(
        "unstorable.json: test result 0: name: must not contain NUL characters or unpaired UTF-16 surrogates",
      );
      expect(server.received).toHaveLength(0);
    } finally {
      await server.close();
    }
  });

  it("takes its limits from the contract: at most 10,000 results and 100 reports per body", async () => {
    await expect(upload(sending({ maxResults: 10_001, dryRun: true }))).rejects.toThrow(
      "--max-results must be a whole number from 1 to 10000",
    );
    const run = await runCli(["junit.xml", ...BASE_ARGS, "--max-results", "20000", "--dry-run"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("expected a whole number from 1 to 10000");
  });
});

describe("retries (p-retry) with an injected clock and sleep", () => {
  const NOW = Date.parse("2026-03-01T10:00:00Z");

  it("honours Retry-After in seconds and as a date, backs off without one, signs each attempt afresh", async () => {
    const sleeps: number[] = [];
    let clock = NOW;
    const { calls, fetch } = scriptedFetch((call) => {
      if (call === 1) return new Response("{}", { status: 429, headers: { "retry-after": "7" } });
      if (call === 2) {
        const at = new Date(clock + 3000).toUTCString();
        return new Response("{}", { status: 503, headers: { "retry-after": at } });
      }
      if (call === 3) return new Response("<html>bad gateway</html>", { status: 502 });
      return ok();
    });
    const outcome = await upload(
      sending({
        fetch,
        retries: 4,
        retryDelayMs: 100,
        now: () => clock,
        sleep: async (ms) => {
          sleeps.push(ms);
          clock += ms;
        },
      }),
    );
    expect(outcome.exitCode).toBe(0);
    expect(outcome.parts).toMatchObject([{ status: "accepted", attempts: 4, httpStatus: 200 }]);
    expect(calls).toHaveLength(4);
    // 7 s; the date 3 s ahead (to the second); then equal-jitter backoff for the third retry: 200–400 ms.
    expect(sleeps.slice(0, 2)).toEqual([7000, 3000]);
    expect(sleeps[2]).toBeGreaterThanOrEqual(200);
    expect(sleeps[2]).toBeLessThanOrEqual(400);
    expect(sleeps).toHaveLength(3);
    const stamps = calls.map((c) => Number((c.headers as Record<string, string>)["webhook-timestamp"]));
    expect(stamps).toEqual([NOW, NOW + 7000, NOW + 10_000, NOW + 10_000 + sleeps[2]!].map((t) => Math.floor(t / 1000)));
    const ids = new Set(calls.map((c) => (c.headers as Record<string, string>)["webhook-id"]));
    expect(ids.size).toBe(1);
  });

  it("caps Retry-After at 60 s and stops after the retries, without a last useless wait", async () => {
    const sleeps: number[] = [];
    const { calls, fetch } = scriptedFetch(
      () =>
        new Response(JSON.stringify(errorBody("rate_limited", "later")), {
          status: 429,
          headers: { "retry-after": "3600" },
        }),
    );
    const outcome = await upload(
      sending({ fetch, retries: 2, now: () => NOW, sleep: async (ms) => void sleeps.push(ms) }),
    );
    expect(calls).toHaveLength(3);
    expect(sleeps).toEqual([60_000, 60_000]);
    expect(outcome).toMatchObject({ exitCode: 0, status: "unavailable" });
    expect(outcome.parts[0]).toMatchObject({
      status: "unavailable",
      attempts: 3,
      httpStatus: 429,
      error: { code: "rate_limited" },
    });
  });

  it("retries network failures and timeouts; a programming error (a TypeError that is no network failure) is not retried", async () => {
    const reasons: string[] = [];
    const reporter = { ...silent, retry: (_part: unknown, info: { reason: string }) => void reasons.push(info.reason) };
    const flaky = scriptedFetch((call) => {
      if (call === 1) throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      if (call === 2) throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
      return ok();
    });
    const recovered = await upload(
      sending({ fetch: flaky.fetch, reporter, timeoutMs: 5000, sleep: async () => {}, now: () => NOW }),
    );
    expect(recovered.parts).toMatchObject([{ status: "accepted", attempts: 3 }]);
    expect(reasons).toEqual(["ECONNRESET", "no response within 5 s"]);

    const broken = scriptedFetch(() => {
      throw new TypeError("Cannot read properties of undefined");
    });
    const outcome = await upload(sending({ fetch: broken.fetch, sleep: async () => {}, now: () => NOW }));
    expect(broken.calls).toHaveLength(1);
    expect(outcome.parts[0]).toMatchObject({ status: "unavailable", attempts: 1 });
  });

  it("never retries a 4xx other than 408 and 429, and retries 408", async () => {
    for (const [status, expected] of [
      [400, 1],
      [409, 1],
      [413, 1],
      [408, 2],
    ] as const) {
      const { calls, fetch } = scriptedFetch((call) =>
        call === 1 ? new Response(JSON.stringify(errorBody("x", "no")), { status }) : ok(),
      );
      await upload(sending({ fetch, sleep: async () => {}, now: () => NOW }));
      expect(calls, `HTTP ${status}`).toHaveLength(expected);
    }
  });
});

describe("splitting at the elements saxes reports", () => {
  const CASES = [
    '<testcase classname="a.B" name="arrow &gt; and /&gt; in attr" attr=\'x > y\' time="0.1"/>',
    '<testcase classname="a.B" name="emoji 🧪 before CRLF"\r\n  time="0.2"><failure message="💥 boom">stack 🧵\r\n  at x</failure></testcase>',
    '<testcase classname="a.B" name="cdata"><system-out><![CDATA[</testcase><testcase name="fake-in-cdata"/>]]></system-out></testcase>',
    '<testcase classname="a.B" name="ansi"><system-out>\u001b[31mred\u001b[0m&nbsp;text</system-out></testcase>',
    '<testcase classname="a.B" name="plain &amp; simple"/>',
    '<testcase classname="c.D" name="other suite"/>',
  ];
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\r\n<!DOCTYPE testsuites>\r\n<?report generator="x"?>\r\n' +
    '<testsuites>\r\n<!-- <testcase name="fake-in-comment"/> -->\r\n' +
    `<testsuite name="one" note="a > b">\r\n<properties><property name="p" value="1"/></properties>\r\n${CASES.slice(0, 5).join("\r\n")}\r\n</testsuite>\r\n` +
    `<testsuite name="two">\r\n${CASES[5]}\r\n</testsuite>\r\n</testsuites>\r\n`;

  it("counts only real testcases and copies every one byte for byte into exactly one document", () => {
    expect(countTestcases(xml)).toBe(6);
    const { documents, warnings } = splitJUnitXml(xml, { maxBytes: 100_000, maxResults: 2 }, "odd.xml");
    expect(warnings).toEqual([]);
    expect(documents.map((d) => d.results)).toEqual([2, 2, 2]);
    const all = documents.map((d) => d.content).join("\n");
    for (const testcase of CASES) expect(all.split(testcase)).toHaveLength(2);
    expect(all).not.toContain("fake-in-comment");
    for (const doc of documents) {
      expect(doc.content.startsWith('<?xml version="1.0" encoding="UTF-8"?>\r\n<!DOCTYPE testsuites>')).toBe(true);
      expect(countTestcases(doc.content)).toBe(doc.results);
    }
    expect(documents[0]!.content).toContain('<testsuite name="one" note="a > b">\n<properties>');
    // The last document closes suite one and opens suite two.
    expect(documents[2]!.content).toMatch(/name="plain &amp; simple"\/>\n<\/testsuite>\n<testsuite name="two">/);
  });

  it("says where a report that must be split is not well-formed", () => {
    const broken = '<testsuites>\n<testsuite name="s">\n<testcase name="a"></testsuite>\n</testsuites>';
    expect(() => splitJUnitXml(broken, { maxBytes: 10, maxResults: 1 }, "broken.xml")).toThrow(
      /^broken\.xml: too large for one upload, and cannot be split: not well-formed XML at line 3, column \d+: unexpected close tag/,
    );
    expect(countTestcases(broken)).toBe(1);
  });
});

describe("idempotency keys and the service's rule (only identical uploads are duplicates)", () => {
  const shard = (name: string): UploadGroup => ({
    kind: "reports",
    fields: FIELDS,
    items: [
      {
        value: {
          format: "junit",
          content: junitDocument([{ name, cases: [{ classname: "c", name: "t", kind: "pass", out: 0 }] }]),
        },
        source: `${name}.xml`,
      },
    ],
  });
  const limits = { maxResults: 10_000, maxBytes: 5 << 20 };

  it("gives shards of one CI run (same commit and run id, other results) different keys", () => {
    const [a] = planParts([shard("shard-1")], limits).parts;
    const [b] = planParts([shard("shard-2")], limits).parts;
    expect(a!.key).not.toBe(b!.key);
    expect(JSON.parse(text(a!.body))).toMatchObject({ run_id: "run-1", idempotency_key: a!.key });
  });

  it("gives the same shard sent again the same key, so the service answers duplicate", () => {
    const [first] = planParts([shard("shard-1")], limits).parts;
    const [again] = planParts([shard("shard-1")], limits).parts;
    expect(again!.key).toBe(first!.key);
    expect(Buffer.from(again!.body).equals(Buffer.from(first!.body))).toBe(true);
  });

  it("uses a payload file's own idempotency_key, numbered per part when the file is split", () => {
    const tests = Array.from({ length: 3 }, (_, i) => ({
      value: { path: "p", name: `t${i}`, status: "pass", startedAt: "2026-03-01T10:00:00Z" },
      source: "payload.json",
      index: i,
    }));
    const group = (key: string): UploadGroup => ({
      kind: "tests",
      fields: { ...FIELDS, idempotency_key: key },
      items: tests,
    });
    expect(planParts([group("ci-77")], limits).parts.map((p) => p.key)).toEqual(["ci-77"]);
    expect(planParts([group("ci-77")], { ...limits, maxResults: 2 }).parts.map((p) => p.key)).toEqual([
      "ci-77.1",
      "ci-77.2",
    ]);
    expect(() => planParts([group("has space")], limits)).toThrow(/cannot be a webhook-id/);
  });
});
