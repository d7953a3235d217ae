/// <reference types="vite/client" />
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { detectFormat, parseReport, ReportParseError } from "../../src/ingestion/formats";
import { expectHandled, payload, repoWithSecret, testDb, upload } from "./ingestion-support";

/**
 * Every real report of the fixture corpus, uploaded through the Worker as its detected format: stored whole,
 * with the parser's counts and its retries (rerunCount) in the rows. Per-format totals: formats.test.ts.
 */
const corpus = import.meta.glob("../fixtures/*/*.{xml,json,trx,out}", {
  query: "?raw",
  import: "default",
  eager: true,
}) as Record<string, string>;

describe("every fixture report through POST /api/ingestion", () => {
  const entries = Object.entries(corpus).map(([file, content]) => [file.replace("../fixtures/", ""), content]);

  it("finds the whole corpus", () => {
    expect(entries.length).toBeGreaterThanOrEqual(40);
  });

  it.each(entries)("%s", async (_file, content) => {
    const format = detectFormat(content) ?? "junit";
    const repo = await repoWithSecret("corpus");
    const { tests: _, ...rest } = payload(repo.repoId, { framework: "unknown" });
    const res = await upload({ ...rest, reports: [{ format, content }] }, repo);
    let parsed: ReturnType<typeof parseReport>;
    try {
      parsed = parseReport(format, content);
    } catch (error) {
      // The corpus's deliberately broken reports (malformed, entity bombs, empty): a 400 that says where.
      expect(error).toBeInstanceOf(ReportParseError);
      expect(res.status).toBe(400);
      const refused = await res.json<{ error: { details: { path: string; message: string }[] } }>();
      expect(refused.error.details[0]).toMatchObject({ path: "reports.0.content" });
      return;
    }
    const body = await res.json<{ summary: { tests_parsed: number; attempts: number } }>();
    expect(res.status, JSON.stringify(body)).toBe(200);
    const reruns = parsed.results.reduce((sum, r) => sum + r.rerunCount, 0);
    expect(body.summary.tests_parsed).toBe(parsed.results.length);
    expect(body.summary.attempts).toBe(parsed.results.length + reruns);
    const stored = await testDb().execute<{ runs: number; reruns: number }>(sql`
      select count(*)::int as runs, coalesce(sum(rerun_count), 0)::int as reruns
      from test_runs where repo_id = ${repo.repoId}`);
    expect(stored.rows[0]).toEqual({ runs: parsed.results.length, reruns });
  });
});

describe("mangled reports of every format", () => {
  // The smallest real report of each format, cut, spliced with hostile characters, or sent as another format.
  const smallest = new Map<string, string>();
  for (const content of Object.values(corpus)) {
    const format = detectFormat(content);
    if (format && content.length < (smallest.get(format)?.length ?? Number.POSITIVE_INFINITY)) {
      smallest.set(format, content);
    }
  }
  const hostile = fc.oneof(
    fc.constantFrom("\u0000", "\ud800", "<", "&", '"', "{", "]", "\n", "&#0;", "\\u0000"),
    fc.string({ unit: "binary", maxLength: 3 }),
  );

  it("never 5xx; a 4xx changes nothing", async () => {
    expect(smallest.size).toBeGreaterThanOrEqual(11);
    const repo = await repoWithSecret("corpus-mangled");
    const reports = [...smallest.entries()];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...reports),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(hostile, { maxLength: 4 }),
        fc.option(fc.constantFrom(...reports.map(([format]) => format))),
        async ([format, content], cutAt, spliceAt, inserts, claimed) => {
          const at = Math.floor(spliceAt * content.length);
          const mangled = (content.slice(0, at) + inserts.join("") + content.slice(at)).slice(
            0,
            Math.max(1, Math.floor(cutAt * (content.length + 8))),
          );
          const { tests: _, ...rest } = payload(repo.repoId, { framework: "unknown" });
          await expectHandled(repo, { ...rest, reports: [{ format: claimed ?? format, content: mangled }] });
        },
      ),
      { numRuns: 120 },
    );
  });
});
