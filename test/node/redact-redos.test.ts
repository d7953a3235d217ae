// Every redaction pattern runs in time linear in its input (src/ingestion/redact.ts, ADR 0004).
// recheck decides it from the pattern's automaton — no timing, no randomness: the automaton
// checker is deterministic, and a `/g` pattern is analysed as the search it is (an attempt at
// every position), which is where `[\w.]+@` on "a.a.a.…" turns quadratic.
//
// Verdicts: "safe" with complexity "safe" means the pattern has no unbounded repetition, so an
// attempt reads a bounded number of characters (the bounds are kept small; `npm run bench:redact`
// measures the constant); "linear" means recheck proved the search linear.
import { check, type Diagnostics } from "recheck";
import { describe, expect, it } from "vitest";
import { REDACTION_RULES } from "../../src/ingestion/redact.ts";

// The slowest pattern takes a few seconds to check; generous limits keep a loaded machine from failing it.
const OPTIONS = { checker: "automaton", timeout: 100_000 } as const;
const TEST_TIMEOUT = 120_000;

function verdict(diagnostics: Diagnostics) {
  if (diagnostics.status === "unknown") return { status: "unknown", reason: diagnostics.error.kind };
  if (diagnostics.status === "vulnerable") {
    return { status: "vulnerable", complexity: diagnostics.complexity.summary, attack: diagnostics.attack.pattern };
  }
  return { status: "safe", checker: diagnostics.checker, complexity: diagnostics.complexity.type };
}

describe.concurrent("redaction patterns are linear (recheck, automaton checker)", { timeout: TEST_TIMEOUT }, () => {
  it.each(REDACTION_RULES.map((rule) => [rule.id, rule.pattern] as const))("%s", async (_id, pattern) => {
    const result = verdict(await check(pattern.source, pattern.flags, OPTIONS));
    expect(result).toEqual({ status: "safe", checker: "automaton", complexity: expect.any(String) });
    expect(["constant", "linear", "safe"]).toContain(result.complexity);
  });

  // The control: the checker, with these options, does find what made redaction quadratic.
  it.each([
    ["e-mail, any start", /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g],
    ["URL scheme, any start", /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/:@]+:[^\s/@]+@/gi],
    ["JWT, eyJ inside a segment", /\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g],
  ])("finds the quadratic search in the old %s pattern", async (_name, pattern) => {
    const result = verdict(await check(pattern.source, pattern.flags, OPTIONS));
    expect(result).toMatchObject({ status: "vulnerable", complexity: "2nd degree polynomial" });
  });
});
