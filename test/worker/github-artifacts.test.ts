import fc from "fast-check";
import { Zip, ZipDeflate, zipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { artifactNameMatcher, DEFAULT_ARTIFACT_PATTERNS, reportsInZip } from "../../src/services/github/artifacts";

/**
 * What the App reads from a workflow run's artifacts: which artifact names match, and which files inside a
 * zip are test reports — within caps that hold against zip bombs and odd files.
 */

const encode = (text: string) => new TextEncoder().encode(text);

const JUNIT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="unit" tests="1"><testcase classname="a.b" name="works" time="0.1"/></testsuite></testsuites>`;
const JEST = JSON.stringify({
  numTotalTests: 1,
  testResults: [
    { name: "/repo/src/a.test.ts", assertionResults: [{ fullName: "a works", title: "works", status: "passed" }] },
  ],
});

/** A zip written as a stream, with data descriptors after each entry, as actions/upload-artifact writes them. */
function streamedZip(files: Record<string, Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  const zip = new Zip((error, chunk) => {
    if (error) throw error;
    parts.push(chunk);
  });
  for (const [name, bytes] of Object.entries(files)) {
    const entry = new ZipDeflate(name, { level: 6 });
    zip.add(entry);
    entry.push(bytes, true);
  }
  zip.end();
  const out = new Uint8Array(parts.reduce((n, part) => n + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

describe("artifact names", () => {
  it("matches the default patterns the way people name test artifacts", () => {
    const matches = artifactNameMatcher(DEFAULT_ARTIFACT_PATTERNS);
    for (const name of ["test-results", "Test-Results-ubuntu-node22", "junit-xml", "playwright-report", "JUnit"]) {
      expect(matches(name), name).toBe(true);
    }
    for (const name of ["coverage", "dist", "build-output", "screenshots"]) expect(matches(name), name).toBe(false);
  });

  it("supports * and ?, anchored at both ends, ignoring case", () => {
    const matches = artifactNameMatcher(["unit-?", "e2e-*-results", "exact"]);
    expect(matches("unit-1")).toBe(true);
    expect(matches("unit-12")).toBe(false);
    expect(matches("E2E-chrome-RESULTS")).toBe(true);
    expect(matches("e2e--results")).toBe(true);
    expect(matches("e2e-results")).toBe(false);
    expect(matches("exact")).toBe(true);
    expect(matches("exactly")).toBe(false);
    expect(matches("not-exact")).toBe(false);
  });

  it("agrees with the glob's meaning on generated patterns and names", () => {
    // The meaning, as a regular expression: the test's reference only (the matcher uses none).
    const reference = (pattern: string) =>
      new RegExp(
        `^${[...pattern]
          .map((ch) =>
            ch === "*" ? "[\\s\\S]*" : ch === "?" ? "[\\s\\S]" : ch.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&"),
          )
          .join("")}$`,
        "i",
      );
    const alphabet = fc.constantFrom("a", "b", "A", "-", "*", "?", ".");
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 8 }).map((c) => c.join("")),
        fc.array(fc.constantFrom("a", "b", "B", "-", "."), { maxLength: 12 }).map((c) => c.join("")),
        (pattern, name) => {
          expect(artifactNameMatcher([pattern])(name)).toBe(reference(pattern).test(name));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("reports in a zip", () => {
  it("finds every report by its content, in folders, and says why other files were left", () => {
    const zip = zipSync({
      "junit/TEST-unit.xml": encode(JUNIT),
      "nested/deeper/jest-results.json": encode(JEST),
      "README.md": encode("# not a report"),
      "screenshot.png": new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]),
      "empty-dir/": new Uint8Array(),
    });
    const { reports, skipped } = reportsInZip(zip);
    expect(reports.map((r) => [r.path, r.format])).toEqual([
      ["junit/TEST-unit.xml", "junit"],
      ["nested/deeper/jest-results.json", "jest-json"],
    ]);
    expect(new TextDecoder().decode(reports[0]!.bytes)).toBe(JUNIT);
    expect(skipped).toEqual([
      { path: "README.md", reason: "not a report format the service reads" },
      { path: "screenshot.png", reason: "not a report format the service reads" },
    ]);
  });

  it("reads zips written with data descriptors, as GitHub's artifacts are", () => {
    const { reports } = reportsInZip(streamedZip({ "a.xml": encode(JUNIT), "b.json": encode(JEST) }));
    expect(reports.map((r) => r.format)).toEqual(["junit", "jest-json"]);
  });

  it("drops a file the moment it passes its cap, so a zip bomb costs no more than the cap", () => {
    // 16 MiB of one byte deflates to about 16 KiB.
    const bomb = new Uint8Array(16 * 1024 * 1024).fill(0x3c);
    const zip = streamedZip({ "bomb.xml": bomb, "ok.xml": encode(JUNIT) });
    expect(zip.byteLength).toBeLessThan(1024 * 1024);
    const { reports, skipped } = reportsInZip(zip, { fileBytes: 1024 * 1024, totalBytes: 4 * 1024 * 1024, files: 10 });
    expect(skipped).toEqual([{ path: "bomb.xml", reason: "larger than 1048576 bytes" }]);
    expect(reports.map((r) => r.path)).toEqual(["ok.xml"]);
  });

  it("stops at the artifact's total and at its file count", () => {
    const files = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`r${i}.xml`, encode(JUNIT)]));
    const size = encode(JUNIT).byteLength;
    const byTotal = reportsInZip(zipSync(files), { fileBytes: 1e6, totalBytes: size * 2, files: 100 });
    expect(byTotal.reports).toHaveLength(2);
    expect(byTotal.skipped.map((s) => s.reason)).toEqual(
      Array(3).fill(`past the artifact's ${size * 2} bytes of reports`),
    );
    const byCount = reportsInZip(zipSync(files), { fileBytes: 1e6, totalBytes: 1e6, files: 3 });
    expect(byCount.reports).toHaveLength(3);
    expect(byCount.skipped).toEqual([{ path: "r3.xml", reason: "more than 3 files" }]);
  });

  it("never throws anything but its own error on generated bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        try {
          reportsInZip(bytes);
        } catch (error) {
          expect((error as Error).name).toBe("ArtifactUnreadableError");
        }
      }),
      { numRuns: 300 },
    );
    // A real zip cut short, and one with a byte flipped in the deflated data.
    const zip = zipSync({ "a.xml": encode(JUNIT.repeat(50)) });
    for (const broken of [zip.subarray(0, zip.byteLength / 2), zip.map((b, i) => (i === 60 ? b ^ 0xff : b))]) {
      try {
        const { reports } = reportsInZip(broken);
        expect(reports.length).toBeLessThanOrEqual(1);
      } catch (error) {
        expect((error as Error).name).toBe("ArtifactUnreadableError");
      }
    }
  });
});
