import { sql } from "drizzle-orm";
import { isStorableText } from "../contract/ingestion";
import { auditQuery } from "./audit";
import type { ServiceContext } from "./context";
import type { OwnerRule } from "./owners";

/**
 * CODEOWNERS (GitHub's rules, docs/codeowners.md): one rule per line, a gitignore-style pattern and the
 * owners of the paths it matches, the last matching line winning. What GitHub documents as unsupported
 * (`!` negation, `[ ]` ranges, a pattern starting with `\#`) is refused with the line number rather than
 * silently ignored as GitHub does, and so are owners that are not `@user`, `@org/team` or an email.
 *
 * Each pattern is compiled to a regular expression over a test's path (`compilePattern`) that means the same
 * in JavaScript (flags `su`) and in PostgreSQL's `~` (ARE), so owners can be computed inside SQL
 * (src/services/owners.ts). The expression uses only `^ $ . [^/] * (?: )? (?! )` and escaped literals, and
 * is unambiguous inside a path segment (each `*` but the last takes the shortest run before the next fixed
 * part: glob matching with fixed-length parts needs no other choice), so it cannot backtrack
 * catastrophically; the only remaining choices are which directory a floating pattern or a `**` starts at,
 * and a pattern may have at most two `**`.
 */

/** Limits, each with its reason (docs/codeowners.md). */
export const CODEOWNERS_LIMITS = {
  /** Bytes of the file. GitHub reads up to 3 MB; 256 KiB holds thousands of rules and is one small request. */
  bytes: 256 * 1024,
  /** Rules (lines with a pattern). PostgreSQL evaluates each rule's expression per path it looks up. */
  rules: 2000,
  /** Characters of one line. */
  lineLength: 4096,
  /** Characters of a pattern: a test's path is at most 1000 characters. */
  patternLength: 1000,
  /** Owners on one line. */
  ownersPerLine: 50,
  /** `**` in one pattern: each is a choice of directory the matcher may have to try. */
  globstars: 2,
  /** Malformed lines listed in a 400 (the rest are counted in one more entry). */
  reportedProblems: 200,
} as const;

export interface CodeownersRule extends OwnerRule {
  /** The pattern as written (escapes kept). */
  pattern: string;
  /** Text every matching path contains (see compilePattern). */
  pathLiteral: string;
}

export interface CodeownersProblem {
  /** 1-based; 0 for the file as a whole. */
  line: number;
  message: string;
}

export type ParsedCodeowners = { ok: true; rules: CodeownersRule[] } | { ok: false; problems: CodeownersProblem[] };

// Owners. Each expression is a run of one class, delimited by characters outside it: linear.
const GITHUB_USER = /^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const GITHUB_TEAM = /^@[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;
const EMAIL = /^[A-Za-z0-9.!#$%&'*+=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}$/;

export function isOwner(token: string): boolean {
  return GITHUB_USER.test(token) || GITHUB_TEAM.test(token) || EMAIL.test(token);
}

/** Parses a whole CODEOWNERS file: every rule, or every malformed line. */
export function parseCodeowners(text: string): ParsedCodeowners {
  const problems: CodeownersProblem[] = [];
  const rules: CodeownersRule[] = [];
  const lines = text.replace(/^\ufeff/, "").split("\n");
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    const raw = lines[index] ?? "";
    const content = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const problem = (message: string) => problems.push({ line, message });
    if (content.length > CODEOWNERS_LIMITS.lineLength) {
      problem(`the line is longer than ${CODEOWNERS_LIMITS.lineLength} characters`);
      continue;
    }
    if (!isStorableText(content)) {
      problem("the line contains a NUL character or an unpaired surrogate");
      continue;
    }
    const tokens = tokenize(content);
    if (typeof tokens === "string") {
      problem(tokens);
      continue;
    }
    const [pattern, ...owners] = tokens;
    if (pattern === undefined) continue; // blank or comment
    const compiled = compilePattern(pattern);
    if (!compiled.ok) {
      problem(compiled.message);
      continue;
    }
    const badOwners = owners.filter((owner) => !isOwner(owner));
    if (badOwners.length > 0) {
      // The owner itself is not repeated back: it may be an email address.
      problem(
        `${badOwners.length === 1 ? "an owner is" : `${badOwners.length} owners are`} not @user, @org/team or an email address`,
      );
      continue;
    }
    if (owners.length > CODEOWNERS_LIMITS.ownersPerLine) {
      problem(`more than ${CODEOWNERS_LIMITS.ownersPerLine} owners`);
      continue;
    }
    rules.push({
      line,
      pattern,
      owners: [...new Set(owners)],
      pathRegex: compiled.regex,
      pathLiteral: compiled.literal,
    });
  }
  if (rules.length > CODEOWNERS_LIMITS.rules) {
    problems.unshift({ line: 0, message: `more than ${CODEOWNERS_LIMITS.rules} rules (${rules.length})` });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, rules };
}

/**
 * A line's tokens: the pattern and its owners, split at unescaped spaces and tabs, up to a `#` that starts a
 * token (a comment). `\ ` is a space inside the pattern; it is kept escaped in the token.
 */
function tokenize(content: string): string[] | string {
  const tokens: string[] = [];
  let current = "";
  for (let i = 0; i < content.length; i++) {
    const char = content[i] as string;
    if (char === " " || char === "\t") {
      if (current !== "") tokens.push(current);
      current = "";
    } else if (char === "#" && current === "") {
      break;
    } else if (char === "\\") {
      const next = content[i + 1];
      if (tokens.length === 0 && current === "" && next === "#") {
        return "a pattern starting with \\# is not supported by CODEOWNERS";
      }
      if (next !== " " || tokens.length > 0) return "only a space may be escaped (\\ ), and only in the pattern";
      current += "\\ ";
      i++;
    } else {
      current += char;
    }
  }
  if (current !== "") tokens.push(current);
  return tokens;
}

export type CompiledPattern = { ok: true; regex: string; literal: string } | { ok: false; message: string };

/** Characters with a meaning in a regular expression, escaped with `\` (valid in JS `u` mode and in AREs). */
const REGEX_SYNTAX = /[\\^$.*+?()[\]{}|/]/g;
const literal = (text: string) => text.replace(REGEX_SYNTAX, "\\$&");

/**
 * A CODEOWNERS pattern (as written, `\ ` escapes kept) as a regular expression over a repository-relative
 * path, matching where gitignore's rules say the pattern matches the path or one of its directories.
 */
export function compilePattern(written: string): CompiledPattern {
  const refuse = (message: string): CompiledPattern => ({ ok: false, message });
  if (written.startsWith("!")) return refuse("negation (!) is not supported by CODEOWNERS");
  if (/[[\]]/.test(written)) return refuse("character ranges ([ ]) are not supported by CODEOWNERS");
  let pattern = written.replaceAll("\\ ", " ");
  if (pattern.length > CODEOWNERS_LIMITS.patternLength) {
    return refuse(`the pattern is longer than ${CODEOWNERS_LIMITS.patternLength} characters`);
  }
  if (pattern.includes("***")) return refuse("more than two * in a row");
  if (pattern.includes("//")) return refuse("an empty path segment (//) matches nothing");
  const directoryOnly = pattern.endsWith("/");
  if (directoryOnly) pattern = pattern.slice(0, -1);
  // A slash anywhere but at the end anchors the pattern at the root; without one it matches at any depth.
  const anchored = pattern.includes("/");
  if (pattern.startsWith("/")) pattern = pattern.slice(1);
  if (pattern === "") return refuse("the pattern matches nothing");
  const segments = pattern.split("/");
  if (segments.some((segment) => segment === "." || segment === "..")) {
    return refuse("paths are relative to the repository root: . and .. segments are not supported");
  }
  if (segments.filter((segment) => segment === "**").length > CODEOWNERS_LIMITS.globstars) {
    return refuse(`more than ${CODEOWNERS_LIMITS.globstars} ** in one pattern`);
  }
  let regex = anchored ? "^" : "^(?:.*/)?";
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    if (segment === "**" && segments.length > 1) {
      // Leading or middle: any number of directories (including none); trailing: everything inside.
      regex += last ? "[^/]*" : "(?:.*/)?";
      return;
    }
    regex += segmentRegex(segment) + (last ? "" : "/");
  });
  // The pattern matches the path itself or a directory it is in; a trailing / only a directory.
  regex += directoryOnly ? "/.*$" : "(?:/.*)?$";
  return { ok: true, regex, literal: longestLiteral(segments) };
}

/**
 * The longest run of plain characters in the pattern's segments: every path the pattern matches contains it
 * (each segment's fixed characters are in the path segment it matched), so SQL can skip, with a `strpos`, the
 * rules whose expression cannot match ('' when the pattern is all wildcards).
 */
function longestLiteral(segments: readonly string[]): string {
  let longest = "";
  for (const segment of segments) {
    for (const piece of segment.split(/[*?]+/)) if (piece.length > longest.length) longest = piece;
  }
  return longest;
}

/**
 * One path segment's glob (`*`, `?`, literals; `**` inside a segment is a `*`) without ambiguity: the segment
 * splits at its stars into fixed-length parts; each `*` but the last takes characters up to the FIRST place
 * the next part matches, which a glob matcher can always do (a later place leaves less room for the rest),
 * and the last `*` takes whatever lies before the final part at the segment's end.
 */
function segmentRegex(segment: string): string {
  const parts = segment.split(/\*+/);
  const fixed = (part: string) => part.split("?").map(literal).join("[^/]");
  let regex = fixed(parts[0] ?? "");
  for (let i = 1; i < parts.length; i++) {
    const part = fixed(parts[i] ?? "");
    const lastStar = i === parts.length - 1;
    regex += lastStar || part === "" ? `[^/]*${part}` : `(?:(?!${part})[^/])*${part}`;
  }
  return regex;
}

/** Every owner named in the rules, distinct and sorted. */
export function distinctOwners(rules: readonly CodeownersRule[]): string[] {
  return [...new Set(rules.flatMap((rule) => rule.owners))].sort();
}

/**
 * Replaces the repository's CODEOWNERS rows of owner_maps with these rules (one row per owner, one row with
 * owner '' for a line without owners), audited, in one database request; manual and heuristic rows stay.
 */
export async function replaceCodeowners(
  ctx: ServiceContext,
  input: { actorId: string; repoId: string; rules: readonly CodeownersRule[] },
): Promise<void> {
  const rows = input.rules.flatMap((rule) =>
    (rule.owners.length > 0 ? rule.owners : [""]).map((owner) => ({
      pattern: rule.pattern,
      owner,
      line: rule.line,
      path_regex: rule.pathRegex,
      path_literal: rule.pathLiteral,
    })),
  );
  const now = ctx.now().toISOString();
  await ctx.db.batch([
    ctx.db.execute(sql`delete from owner_maps where repo_id = ${input.repoId} and source = 'CODEOWNERS'`),
    // One parameter whatever the number of rows (a multi-row VALUES would run into the parameter limit).
    ctx.db.execute(sql`
      insert into owner_maps (repo_id, pattern, owner, source, line, path_regex, path_literal, created_at)
      select ${input.repoId}, r.pattern, r.owner, 'CODEOWNERS', r.line, r.path_regex, r.path_literal, ${now}
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        as r(pattern text, owner text, line int, path_regex text, path_literal text)`),
    auditQuery(ctx.db, {
      actorId: input.actorId,
      action: "config_updated",
      subject: "configuration",
      subjectId: input.repoId,
      description: "CODEOWNERS replaced",
      // Counts only: owners may be email addresses.
      metadata: { codeowners: { rules: input.rules.length, owners: distinctOwners(input.rules).length } },
      requestId: ctx.requestId ?? null,
      createdAt: ctx.now(),
    }),
  ]);
}
