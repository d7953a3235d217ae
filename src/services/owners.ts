import { type SQL, sql } from "drizzle-orm";

/**
 * A test's owners, from the repository's CODEOWNERS rows in owner_maps (stored by
 * `PUT /api/repos/:repoId/codeowners`, src/services/codeowners.ts). GitHub's rule: the LAST line whose
 * pattern matches the path decides, and a line without owners means nobody owns those paths.
 *
 * Each CODEOWNERS line is one row per owner (an owner-less line is one row whose owner is ''), all rows of a
 * line sharing `line` and `path_regex`, a regular expression that means the same in PostgreSQL's `~` as the
 * pattern does in GitHub's (proved against the `ignore` matcher in test/worker/codeowners.test.ts), and
 * `path_literal`, text every matching path contains (compiling an expression costs PostgreSQL far more than
 * matching it, and it caches only a few, so a `strpos` first rules out most lines cheaply). So the
 * owners of a path are found inside SQL, in the statement that needs them (the flaky-test list's owner
 * filter, the upload's notifications), without a round trip.
 */

/**
 * An SQL expression of type text[]: the owners of the last CODEOWNERS line matching `path` in the repository,
 * sorted (byte order), `'{}'` when no line matches or the matching line has no owners. `repoId` is a uuid
 * string (bound as a parameter) or an SQL expression such as a column of the outer query; `path` is an SQL
 * expression of type text (usually `test_cases.path`). The subqueries use their own table aliases, so the
 * expression may be used inside any query.
 */
export function ownersOfPath(repoId: SQL | string, path: SQL): SQL {
  const repo = typeof repoId === "string" ? sql`${repoId}::uuid` : repoId;
  return sql`coalesce((
    select array_agg(codeowners_owner.owner order by codeowners_owner.owner collate "C")
      filter (where codeowners_owner.owner <> '')
    from owner_maps codeowners_owner
    where codeowners_owner.repo_id = ${repo}
      and codeowners_owner.source = 'CODEOWNERS'
      and codeowners_owner.line = (
        select max(codeowners_rule.line)
        from owner_maps codeowners_rule
        where codeowners_rule.repo_id = ${repo}
          and codeowners_rule.source = 'CODEOWNERS'
          and codeowners_rule.path_regex is not null
          -- PostgreSQL keeps only a few compiled expressions: the literal spares it compiling those that cannot match.
          and case when strpos(${path}, coalesce(codeowners_rule.path_literal, '')) > 0
            then (${path}) ~ codeowners_rule.path_regex else false end
      )
  ), '{}'::text[])`;
}

/** One CODEOWNERS line as stored: its line number, its pattern's regular expression and its owners. */
export interface OwnerRule {
  line: number;
  pathRegex: string;
  owners: readonly string[];
}

/**
 * The same answer as `ownersOfPath` in JavaScript, from rules in hand (the PUT's answer, tests): the owners
 * of the last matching line, sorted, `[]` when none matches. Flags `su`: `.` and `[^/]` take whole code
 * points and newlines, as PostgreSQL's do.
 */
export function ownersOfPathIn(rules: readonly OwnerRule[], path: string): string[] {
  let last: OwnerRule | undefined;
  for (const rule of rules) {
    if ((last === undefined || rule.line > last.line) && new RegExp(rule.pathRegex, "su").test(path)) last = rule;
  }
  return [...new Set(last?.owners ?? [])].filter((owner) => owner !== "").sort(byteOrder);
}

/** PostgreSQL's `collate "C"` for the ASCII owners CODEOWNERS allows. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
