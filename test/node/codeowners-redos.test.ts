// The expressions CODEOWNERS patterns compile to (src/services/codeowners.ts) run in production only in
// PostgreSQL (`path ~ path_regex`, src/services/owners.ts), whose engine does not backtrack on these
// constructs; in JavaScript they are the tests' oracle. Still, each must be linear for a backtracking engine
// too, decided by recheck — no timing. Lookaheads (`(?:(?!b)[^/])*`, which make a `*` unambiguous within a
// segment: without them `a*b*c` is quadratic) are outside the automaton checker's reach; patterns with them
// go to recheck's fuzz checker with a fixed seed (deterministic; evidence rather than proof), whose attack
// strings would expose super-linear backtracking. The one known exception: a pattern with two `**` (the
// most CODEOWNERS allows) leaves a backtracking engine two places to split the path, quadratic at worst —
// a million steps at the 1,000-character path cap — which this test pins so that nothing worse slips in.
import { check, type Diagnostics } from "recheck";
import { describe, expect, it } from "vitest";
import { compilePattern } from "../../src/services/codeowners.ts";

const AUTOMATON = { checker: "automaton", timeout: 100_000 } as const;
const FUZZ = { checker: "fuzz", randomSeed: 20261202, timeout: 100_000 } as const;

function verdict(diagnostics: Diagnostics) {
  if (diagnostics.status === "unknown") return { status: "unknown", reason: diagnostics.error.kind };
  if (diagnostics.status === "vulnerable") return { status: "vulnerable", complexity: diagnostics.complexity.summary };
  return { status: "safe", complexity: diagnostics.complexity.type };
}

const QUADRATIC = new Set(["**/a*b/**/c*d*e"]);

const PATTERNS = [
  "*",
  "*.js",
  "/docs/",
  "docs/",
  "apps/",
  "**/logs",
  "/build/logs/",
  "src/**/test/*.ts",
  "a?b*",
  "a*b*c",
  "*a*b*c*d",
  "**/a*b/**/c*d*e",
  "docs/*",
  "/scripts/**",
  "my\\ file.txt",
];

describe.concurrent("compiled CODEOWNERS expressions are linear (recheck)", { timeout: 120_000 }, () => {
  it.each(PATTERNS)("%s", async (pattern) => {
    const compiled = compilePattern(pattern);
    if (!compiled.ok) throw new Error(`${pattern} was refused`);
    const lookahead = compiled.regex.includes("(?!");
    const result = verdict(await check(compiled.regex, "su", lookahead ? FUZZ : AUTOMATON));
    if (QUADRATIC.has(pattern)) {
      expect(result).toEqual({ status: "vulnerable", complexity: "2nd degree polynomial (fuzz)" });
    } else {
      expect(result).toEqual({ status: "safe", complexity: lookahead ? expect.any(String) : "linear" });
    }
  });
});
