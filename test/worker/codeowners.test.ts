import { exports } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import ignore from "ignore";
import { describe, expect, it } from "vitest";
import { CODEOWNERS_LIMITS, compilePattern, parseCodeowners } from "../../src/services/codeowners";
import { ownersOfPath, ownersOfPathIn } from "../../src/services/owners";
import { repoWithPeople } from "./api-support";
import { testDb } from "./ingestion-support";

/**
 * PUT /api/repos/:repoId/codeowners through the real Worker, the parser, and the proof that a pattern's
 * compiled expression answers like the `ignore` matcher (gitignore's rules) in JavaScript and in PostgreSQL.
 */

function putCodeowners(
  repoId: string,
  token: string | undefined,
  body: string | Uint8Array,
  contentType = "text/plain",
) {
  const headers: Record<string, string> = { "Content-Type": contentType };
  if (token) headers.Authorization = `Bearer ${token}`;
  return exports.default.fetch(`http://worker/api/repos/${repoId}/codeowners`, { method: "PUT", headers, body });
}

type OwnerRow = {
  pattern: string;
  path_literal: string | null;
  owner: string;
  source: string;
  line: number | null;
  path_regex: string | null;
};

async function ownerRows(repoId: string): Promise<OwnerRow[]> {
  const result = await testDb().execute<OwnerRow>(sql`
    select pattern, owner, source::text as source, line, path_regex, path_literal from owner_maps
    where repo_id = ${repoId} order by source, line, owner collate "C"`);
  return result.rows;
}

/** The repository's owner rows and CODEOWNERS audit rows, for "nothing changed". */
async function ownerState(repoId: string): Promise<string> {
  const result = await testDb().execute<{ digest: string }>(sql`
    select md5(
      coalesce((select string_agg(t::text, '|' order by t::text) from owner_maps t where repo_id = ${repoId}), '') ||
      coalesce((select string_agg(t::text, '|' order by t::text) from audit_logs t where subject_id = ${repoId}), '')
    ) as digest`);
  return result.rows[0].digest;
}

async function sqlOwners(repoId: string, paths: string[]): Promise<string[][]> {
  const result = await testDb().execute<{ owners: string[] }>(sql`
    select ${ownersOfPath(repoId, sql`p.path`)} as owners
    from jsonb_array_elements_text(${JSON.stringify(paths)}::jsonb) with ordinality as p(path, n)
    order by p.n`);
  return result.rows.map((row) => row.owners);
}

const SAMPLE = [
  "# The default owners",
  "*       @org/everyone   # trailing comment",
  "",
  "*.js    @js-owner  docs@example.com",
  "/docs/  @writer",
  "/docs/internal/",
  "apps/   @apps-team @org/apps",
  "src/**/test_*.py @py",
  "My\\ Folder/ @spaced",
  "*.js    @late-js",
].join("\n");

describe("PUT /api/repos/:repoId/codeowners", () => {
  it("stores one row per owner of each line, answers rules and owners, and audits", async () => {
    const { repoId, member } = await repoWithPeople();
    await testDb().execute(sql`
      insert into owner_maps (repo_id, pattern, owner, source) values (${repoId}, 'legacy/', '@manual', 'manual')`);
    const res = await putCodeowners(repoId, member.token, SAMPLE);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toEqual({
      rules: 8,
      owners: [
        "@apps-team",
        "@js-owner",
        "@late-js",
        "@org/apps",
        "@org/everyone",
        "@py",
        "@spaced",
        "@writer",
        "docs@example.com",
      ],
    });
    const rows = await ownerRows(repoId);
    expect(rows.map(({ pattern, owner, source, line }) => [source, line, pattern, owner])).toEqual([
      ["CODEOWNERS", 2, "*", "@org/everyone"],
      ["CODEOWNERS", 4, "*.js", "@js-owner"],
      ["CODEOWNERS", 4, "*.js", "docs@example.com"],
      ["CODEOWNERS", 5, "/docs/", "@writer"],
      ["CODEOWNERS", 6, "/docs/internal/", ""],
      ["CODEOWNERS", 7, "apps/", "@apps-team"],
      ["CODEOWNERS", 7, "apps/", "@org/apps"],
      ["CODEOWNERS", 8, "src/**/test_*.py", "@py"],
      ["CODEOWNERS", 9, "My\\ Folder/", "@spaced"],
      ["CODEOWNERS", 10, "*.js", "@late-js"],
      ["manual", null, "legacy/", "@manual"],
    ]);
    expect(rows.find((row) => row.line === 5)).toMatchObject({ path_regex: "^docs/.*$", path_literal: "docs" });
    expect(rows.find((row) => row.line === 8)).toMatchObject({ path_literal: "test_" });
    expect(rows.find((row) => row.line === 2)).toMatchObject({
      path_regex: "^(?:.*/)?[^/]*(?:/.*)?$",
      path_literal: "",
    });
    const audit = await testDb().execute<{ actor_id: string; metadata: unknown }>(sql`
      select actor_id, metadata from audit_logs where subject_id = ${repoId} and action = 'config_updated'`);
    expect(audit.rows).toEqual([{ actor_id: member.id, metadata: { codeowners: { rules: 8, owners: 9 } } }]);

    // A second PUT replaces the CODEOWNERS rows and leaves the manual one.
    const again = await putCodeowners(
      repoId,
      member.token,
      "# nothing but\n/only/ @one\n",
      "text/plain; charset=utf-8",
    );
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ rules: 1, owners: ["@one"] });
    expect((await ownerRows(repoId)).map((row) => [row.source, row.line, row.owner])).toEqual([
      ["CODEOWNERS", 2, "@one"],
      ["manual", null, "@manual"],
    ]);
  });

  it("finds a path's owners in SQL: the last matching line, none for an owner-less line", async () => {
    const { repoId, admin } = await repoWithPeople();
    expect((await putCodeowners(repoId, admin.token, SAMPLE)).status).toBe(200);
    const cases: [string, string[]][] = [
      ["README.md", ["@org/everyone"]],
      ["src/app.js", ["@late-js"]], // line 10 wins over line 4
      ["docs/guide.md", ["@writer"]],
      ["docs/internal/secret.md", []], // line 6: no owners
      ["docs/internal/a.js", ["@late-js"]],
      ["x/apps/y/z.ts", ["@apps-team", "@org/apps"]],
      ["apps", ["@org/everyone"]], // apps/ is a directory only
      ["src/a/b/test_x.py", ["@py"]],
      ["src/test_x.py", ["@py"]],
      ["lib/src/test_x.py", ["@org/everyone"]], // src/** is anchored at the root
      ["My Folder/f.txt", ["@spaced"]],
    ];
    const paths = cases.map(([path]) => path);
    expect(await sqlOwners(repoId, paths)).toEqual(cases.map(([, owners]) => owners));
    const parsed = parseCodeowners(SAMPLE);
    if (!parsed.ok) throw new Error("sample is valid");
    expect(paths.map((path) => ownersOfPathIn(parsed.rules, path))).toEqual(cases.map(([, owners]) => owners));
    // A repository without CODEOWNERS, and a column of the outer query as the repository.
    const { repoId: other } = await repoWithPeople();
    expect(await sqlOwners(other, ["README.md"])).toEqual([[]]);
    const byColumn = await testDb().execute<{ owners: string[] }>(sql`
      select ${ownersOfPath(sql`r.id`, sql`'src/x.js'`)} as owners from repos r where r.id = ${repoId}`);
    expect(byColumn.rows).toEqual([{ owners: ["@late-js"] }]);
  });

  it("answers every malformed line with its number, and changes nothing", async () => {
    const { repoId, admin } = await repoWithPeople();
    expect((await putCodeowners(repoId, admin.token, "* @keep\n")).status).toBe(200);
    const before = await ownerState(repoId);
    const file = [
      "* @fine", // 1
      "!negated @a", // 2
      "src/[ab]/ @a", // 3
      "\\#not-a-comment @a", // 4
      "docs/ not-an-owner", // 5
      "# a comment", // 6
      "a\\*b @a", // 7
      "***/x @a", // 8
      `${"x".repeat(CODEOWNERS_LIMITS.lineLength + 1)}`, // 9
      "a\u0000b @a", // 10
      "x @a @b\\ c", // 11
    ].join("\n");
    const res = await putCodeowners(repoId, admin.token, file);
    expect(res.status).toBe(400);
    const body = await res.json<{ error: { code: string; details: { path: string; message: string }[] } }>();
    expect(body.error.code).toBe("validation_failed");
    expect(body.error.details.map((detail) => detail.path)).toEqual([
      "line 2",
      "line 3",
      "line 4",
      "line 5",
      "line 7",
      "line 8",
      "line 9",
      "line 10",
      "line 11",
    ]);
    expect(body.error.details[0].message).toMatch(/negation/);
    expect(body.error.details[1].message).toMatch(/character ranges/);
    expect(body.error.details[2].message).toMatch(/\\#/);
    expect(body.error.details[3].message).toMatch(/not @user, @org\/team or an email/);
    expect(JSON.stringify(body)).not.toContain("not-an-owner"); // owners may be emails: never echoed
    expect(await ownerState(repoId)).toBe(before);
  });

  it("refuses too many rules, an oversized body, bad UTF-8 and other content types", async () => {
    const { repoId, admin } = await repoWithPeople();
    const before = await ownerState(repoId);
    const tooMany = Array.from({ length: CODEOWNERS_LIMITS.rules + 1 }, (_, i) => `/d${i}/ @a`).join("\n");
    const many = await putCodeowners(repoId, admin.token, tooMany);
    expect(many.status).toBe(400);
    expect((await many.json<{ error: { details: unknown } }>()).error.details).toEqual([
      { path: "body", message: `more than ${CODEOWNERS_LIMITS.rules} rules (${CODEOWNERS_LIMITS.rules + 1})` },
    ]);
    const big = await putCodeowners(repoId, admin.token, `# ${"x".repeat(CODEOWNERS_LIMITS.bytes)}`);
    expect(big.status).toBe(413);
    expect((await big.json<{ error: { code: string } }>()).error.code).toBe("payload_too_large");
    const notUtf8 = await putCodeowners(repoId, admin.token, new Uint8Array([0x2a, 0x20, 0x40, 0xff, 0x0a]));
    expect(notUtf8.status).toBe(400);
    for (const type of ["application/json", "text/plain; charset=latin1", "text/html", ""]) {
      const res = await putCodeowners(repoId, admin.token, "* @a", type);
      expect(res.status, type).toBe(415);
      expect((await res.json<{ error: { code: string } }>()).error.code).toBe("unsupported_media_type");
    }
    // Larger than the API's JSON cap but within the CODEOWNERS cap: accepted.
    const large = `${"# padding\n".repeat(8000)}* @a\n`;
    expect(large.length).toBeGreaterThan(64 * 1024);
    expect((await putCodeowners(repoId, admin.token, large)).status).toBe(200);
    const after = await ownerRows(repoId);
    expect(after.map((row) => [row.line, row.owner])).toEqual([[8001, "@a"]]);
    expect(before).not.toBe(await ownerState(repoId));
  });

  it("refuses callers without write access: 401, 403 for read_only, 404 for others", async () => {
    const { repoId, reader } = await repoWithPeople();
    const { admin: stranger } = await repoWithPeople();
    const before = await ownerState(repoId);
    const anonymous = await putCodeowners(repoId, undefined, "* @a");
    expect(anonymous.status).toBe(401);
    const readOnly = await putCodeowners(repoId, reader.token, "* @a");
    expect(readOnly.status).toBe(403);
    expect((await readOnly.json<{ error: { code: string } }>()).error.code).toBe("forbidden");
    expect((await putCodeowners(repoId, stranger.token, "* @a")).status).toBe(404);
    expect(await ownerState(repoId)).toBe(before);
  });

  it("never answers 5xx to garbage, and a 4xx changes nothing", async () => {
    const { repoId, admin } = await repoWithPeople();
    expect((await putCodeowners(repoId, admin.token, "* @keep\n")).status).toBe(200);
    const line = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 40 }),
      fc
        .tuple(fc.constantFrom("*", "/a/", "!x", "[x]", "\\#a", "a\\ b", "**/c", "#", ""), fc.string({ maxLength: 10 }))
        .map(([pattern, rest]) => `${pattern} ${rest}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 8 }), async (lines) => {
        const before = await ownerState(repoId);
        const res = await putCodeowners(repoId, admin.token, lines.join("\n"));
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        if (res.status >= 400) {
          expect(JSON.parse(text).error.code).toBeTypeOf("string");
          expect(await ownerState(repoId)).toBe(before);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("the parser", () => {
  it("reads comments, escapes, owner-less lines and CRLF", () => {
    expect(
      parseCodeowners("\ufeff# c\r\n  # indented\r\n*.md @a @a  @b#not-comment\r\ndocs/\r\n\\ lead @c\r\n"),
    ).toEqual({
      ok: false,
      problems: [{ line: 3, message: "an owner is not @user, @org/team or an email address" }],
    });
    const parsed = parseCodeowners("\ufeff# c\r\n  # indented\r\n*.md @a @a  @b # comment\r\ndocs/\r\n\\ lead @c\r\n");
    expect(parsed).toMatchObject({
      ok: true,
      rules: [
        { line: 3, pattern: "*.md", owners: ["@a", "@b"] },
        { line: 4, pattern: "docs/", owners: [] },
        { line: 5, pattern: "\\ lead", owners: ["@c"] },
      ],
    });
  });

  it("accepts GitHub's owner forms only", () => {
    for (const owner of ["@octocat", "@my-org/my_team.x", "someone@example.co.uk", "a.b+c@x-y.io"]) {
      expect(parseCodeowners(`* ${owner}`).ok, owner).toBe(true);
    }
    for (const owner of ["octocat", "@", "@-x", "@org/", "a@b", "@a/b/c", "x@@y.com", "@a b"]) {
      expect(parseCodeowners(`* ${owner}`).ok, owner).toBe(false);
    }
  });
});

// The equivalence proof: generated patterns and paths, the `ignore` matcher (gitignore's rules, the
// reference), the compiled expression in JavaScript, and the same expression in PostgreSQL.

const PATTERN_PIECES = [
  "a",
  "b",
  "ab",
  ".",
  "-",
  "_",
  " ",
  "é",
  "😀",
  "*",
  "?",
  "**",
  "/",
  "x.js",
  "+",
  "(",
  "$",
  "^",
  "{1}",
  "|",
];
const pattern = fc
  .array(fc.constantFrom(...PATTERN_PIECES), { minLength: 1, maxLength: 8 })
  .map((pieces) => pieces.join(""))
  .filter((raw) => raw.trim() === raw)
  .map((raw) => raw.replaceAll(" ", "\\ "));
const segment = fc
  .array(fc.constantFrom("a", "b", "ab", ".", "-", " ", "é", "😀", "x.js", "+", "(", "$", "\n", "*", "?"), {
    minLength: 1,
    maxLength: 4,
  })
  .map((parts) => parts.join(""))
  .filter((s) => s !== "." && s !== "..");
/**
 * `ignore` reads text in UTF-16 code units (its `?` takes half of an emoji); ours, like PostgreSQL, in
 * characters. The reference sees each astral character as one private-use character instead.
 */
const bmp = (text: string) => text.replaceAll("😀", "\ue000");
const reference = (written: string, candidate: string) => ignore().add(bmp(written)).ignores(bmp(candidate));
const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((segments) => segments.join("/"));

describe("a pattern's expression means what gitignore's rules say, in JavaScript and in PostgreSQL", () => {
  it("agrees with the ignore matcher and with PostgreSQL's ~ on generated patterns and paths", async () => {
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(pattern, fc.array(path, { minLength: 1, maxLength: 12 }), async (written, paths) => {
        const compiled = compilePattern(written);
        if (!compiled.ok) return;
        const expected = paths.map((p) => reference(written, p));
        const js = paths.map((p) => new RegExp(compiled.regex, "su").test(p));
        const result = await testDb().execute<{ matches: boolean }>(sql`
          select p.path ~ ${compiled.regex} as matches
          from jsonb_array_elements_text(${JSON.stringify(paths)}::jsonb) with ordinality as p(path, n)
          order by p.n`);
        expect(js, `${written} → ${compiled.regex}`).toEqual(expected);
        // The literal that spares PostgreSQL the expression is in every path the pattern matches.
        expect(paths.filter((p, i) => expected[i] && !p.includes(compiled.literal))).toEqual([]);
        expect(
          result.rows.map((row) => row.matches),
          `${written} → ${compiled.regex}`,
        ).toEqual(expected);
        compared += paths.length;
      }),
      { numRuns: 250 },
    );
    expect(compared).toBeGreaterThan(500);
  });

  it("matches paths that its pattern was made from (positive cases are not left to chance)", async () => {
    // Paths built from the pattern's own text, so most of them match.
    const matching = pattern.chain((written) =>
      fc.tuple(
        fc.constant(written),
        fc.array(fc.constantFrom("", "a/", "ab/x/"), { maxLength: 2 }).map((prefix) => prefix.join("")),
        fc.constantFrom("", "/f", "/a/b"),
        fc.constantFrom("a", "", "bb"),
      ),
    );
    let positives = 0;
    await fc.assert(
      fc.asyncProperty(matching, async ([written, prefix, suffix, fill]) => {
        const compiled = compilePattern(written);
        if (!compiled.ok) return;
        const core = written
          .replaceAll("\\ ", " ")
          .replace(/^\/+/, "")
          .replace(/\/+$/, "/f")
          .replaceAll("**", fill)
          .replaceAll("*", fill)
          .replaceAll("?", "q");
        const candidate = `${prefix}${core}${suffix}`.replace(/\/+/g, "/").replace(/^\/|\/$/g, "");
        const segments = candidate.split("/");
        if (candidate === "" || segments.some((s) => s === "" || s === "." || s === "..")) return;
        const expected = reference(written, candidate);
        const result = await testDb().execute<{ matches: boolean }>(
          sql`select ${candidate} ~ ${compiled.regex} as matches`,
        );
        expect(new RegExp(compiled.regex, "su").test(candidate), `${written} ${candidate}`).toBe(expected);
        if (expected) expect(candidate).toContain(compiled.literal);
        expect(result.rows[0].matches, `${written} ${candidate}`).toBe(expected);
        if (expected) positives++;
      }),
      { numRuns: 200 },
    );
    expect(positives).toBeGreaterThan(50);
  });
});

describe("a whole file: the last matching line, through the Worker and in SQL", () => {
  it("ownersOfPath in SQL, ownersOfPathIn and the ignore matcher's last match agree on generated files", async () => {
    const { repoId, admin } = await repoWithPeople();
    const simplePattern = fc
      .array(fc.constantFrom("a", "b", "x.js", "*", "?", "**", "/", "é"), { minLength: 1, maxLength: 5 })
      .map((pieces) => pieces.join(""))
      .filter((written) => compilePattern(written).ok);
    const rule = fc.tuple(simplePattern, fc.subarray(["@a", "@org/b", "c@example.com"]));
    const simplePath = fc
      .array(
        fc.array(fc.constantFrom("a", "b", "x.js", "é"), { minLength: 1, maxLength: 3 }).map((p) => p.join("")),
        {
          minLength: 1,
          maxLength: 4,
        },
      )
      .map((segments) => segments.join("/"));
    await fc.assert(
      fc.asyncProperty(
        fc.array(rule, { minLength: 1, maxLength: 8 }),
        fc.array(simplePath, { minLength: 1, maxLength: 10 }),
        async (rules, paths) => {
          const file = rules.map(([written, owners]) => [written, ...owners].join(" ")).join("\n");
          const res = await putCodeowners(repoId, admin.token, file);
          expect(res.status, await res.clone().text()).toBe(200);
          const parsed = parseCodeowners(file);
          if (!parsed.ok) throw new Error("generated files are valid");
          const lastMatch = (candidate: string) => {
            const found = rules.findLast(([written]) => reference(written, candidate));
            return [...(found?.[1] ?? [])].sort();
          };
          const expected = paths.map(lastMatch);
          expect(paths.map((candidate) => ownersOfPathIn(parsed.rules, candidate))).toEqual(expected);
          expect(await sqlOwners(repoId, paths)).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });
});
