/**
 * `npm run bench:redact`: what redacting failure output costs, and proof that
 * it stays linear on input built to make regular expressions backtrack.
 *
 * For 10 KiB, 1 MiB and 5 MiB of ordinary CI failure output (stack traces,
 * assertion diffs, log lines, a few secrets) and of each adversarial family
 * (runs of `a.a.a.`, `a-b-c-`, every rule's prefix repeated without its token,
 * …) it reports the median CPU time of `redact()`, the throughput in MiB/s and,
 * per size, the slowest adversarial family against ordinary text. Linear time
 * shows as a throughput that stays the same from 10 KiB to 5 MiB.
 *
 *   npm run bench:redact                  # the table in the README
 *   npm run bench:redact -- --families    # every family at every size
 */
import { parseArgs } from "node:util";
import { redact } from "../../src/ingestion/redact.ts";

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: String([10 * 1024, 1024 * 1024, 5 * 1024 * 1024]) },
    families: { type: "boolean", default: false },
  },
});
const SIZES = args.sizes.split(",").map(Number);
const MiB = 1024 * 1024;

/** A deterministic PRNG (mulberry32), so every run times the same text. */
function prng(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
function randomToken(random: () => number, length: number, alphabet = ALNUM): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(random() * alphabet.length)];
  return out;
}

/** Ordinary failure output: what CI jobs print, with a secret or an address now and then. */
function ordinaryText(size: number): string {
  const random = prng(1);
  const lines = [
    () => `AssertionError: expected ${Math.floor(random() * 1000)} to equal ${Math.floor(random() * 1000)}`,
    () =>
      `    at Object.<anonymous> (/home/runner/work/app/app/src/module${Math.floor(random() * 50)}/feature.test.ts:${Math.floor(random() * 400)}:17)`,
    () => "    at processTicksAndRejections (node:internal/process/task_queues:95:5)",
    () => `\tat com.example.orders.OrderServiceTest.placesOrder(OrderServiceTest.java:${Math.floor(random() * 300)})`,
    () => `  File "/builds/group/project/tests/test_api.py", line ${Math.floor(random() * 500)}, in test_login`,
    () =>
      `E       assert response.status_code == 200, got ${random() < 0.5 ? 500 : 404} from GET /api/v1/users/${Math.floor(random() * 1e6)}`,
    () =>
      `2026-03-0${1 + Math.floor(random() * 9)}T12:34:56.789Z INFO  request id=${randomToken(random, 8)} path=/api/items?page=${Math.floor(random() * 9)} took ${Math.floor(random() * 900)}ms`,
    () => '- Expected  - 3\n+ Received  + 3\n\n  Object {\n-   "name": "widget",\n+   "name": "gadget",\n  }',
    () =>
      `Timeout of 5000ms exceeded waiting for http://localhost:${3000 + Math.floor(random() * 100)}/health (connection refused)`,
    () =>
      `commit ${randomToken(random, 7, "0123456789abcdef")} on branch feature/${randomToken(random, 6).toLowerCase()}: 12 passed, 1 failed, 2 skipped`,
    // Now and then something that must go: fake, correctly shaped values.
    () =>
      `login failed for ${randomToken(random, 6).toLowerCase()}.${randomToken(random, 5).toLowerCase()}@example.com`,
    () => `GITHUB_TOKEN=${"ghp"}_${randomToken(random, 36)} set in env`,
    () => `connecting to postgres://app:${randomToken(random, 12)}@db.internal:5432/app`,
  ];
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const line = lines[Math.floor(random() * lines.length)]();
    parts.push(line);
    length += line.length + 1;
  }
  return parts.join("\n").slice(0, size);
}

/**
 * Input built to make patterns backtrack: for each family, a unit repeated to
 * the size. The first two took seconds per 40 KB before the patterns were made linear.
 */
const ADVERSARIAL: Record<string, string> = {
  "a.a.a.": "a.",
  "a-b-c-": "a-b-c-",
  "word chars, no delimiter": "abcdefghijklmnopqrstuvwxyz0123456789_",
  "@ without a domain": "a@",
  "@ with a domain that never ends in a TLD": `x@${"b.".repeat(127)}`,
  "email local parts": "john.smith@example",
  "scheme:// chains": "a://b:c",
  "JWT prefix eyJ-": "eyJ-",
  "JWT segments eyJa.": "eyJa.",
  "ghs_1_ repeated": "ghs_1_a",
  // Joined with spaces, so that no prefix is followed by something a secret scanner takes for a token.
  "token prefixes": `${["ghp_", "glpat-", "AIza", "npm_", "AKIA", "xoxb-", "sk-", "sk_live_", "whsec_"].join(" ")} `,
  "-----BEGIN repeated": "-----BEGIN RSA ",
  "-----BEGIN PRIVATE KEY without END": "-----BEGIN PRIVATE KEY-----\n",
  "key blocks with -----END lines that never close": `-----BEGIN PRIVATE KEY-----\n-----END ${"A ".repeat(40)}\n`,
  "tokentoken (keyword, no separator)": "tokenpassword",
  "keyword= repeated": "token=",
  "secret_access_key: repeated": "secret_access_key: ",
  "Bearer repeated": "Bearer ",
  "hex runs of 16": "0123456789abcdef ",
  "base64 runs of 63": `${"Ab0+".repeat(15)}abc `,
  whitespace: " \t\n",
};

function repeatTo(unit: string, size: number): string {
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

/**
 * Every family's unit, picked at random: what no single rule was tuned for. Not the unterminated
 * key block, which would make the rest of the text one cheap match.
 */
function mixed(size: number): string {
  const random = prng(2);
  const units = Object.values(ADVERSARIAL).filter((unit) => !unit.includes("PRIVATE KEY-----"));
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const unit = units[Math.floor(random() * units.length)];
    const part = unit.repeat(1 + Math.floor(random() * 8));
    parts.push(part);
    length += part.length;
  }
  return parts.join("").slice(0, size);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** CPU milliseconds of the process (all its threads, so garbage collection counts too). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Median CPU milliseconds of one redact(text), after a warm-up: batches of runs, each batch's CPU
 * time divided by its runs. CPU time, not wall time: it is what a Worker is limited and billed by,
 * and it does not count the time other processes on a shared machine take.
 */
function time(text: string): number {
  const [batches, runs] = text.length <= 64 * 1024 ? [11, 25] : text.length <= 2 * MiB ? [11, 1] : [7, 1];
  redact(text);
  const samples: number[] = [];
  for (let batch = 0; batch < batches; batch++) {
    const start = cpuMs();
    for (let i = 0; i < runs; i++) redact(text);
    samples.push((cpuMs() - start) / runs);
  }
  return median(samples);
}

const label = (size: number) => (size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`);
const throughput = (size: number, ms: number) => size / MiB / (ms / 1000);
const fixed = (value: number, digits = 2) => value.toFixed(digits);

function main() {
  console.log(
    `anchorpipe bench:redact — node ${process.version}; CPU time of redact() on ${SIZES.map(label).join(", ")} (median)`,
  );
  const summary: string[] = [];
  const families: string[] = [];
  for (const size of SIZES) {
    const ordinary = time(ordinaryText(size));
    let worst = { name: "", ms: 0 };
    const inputs: [string, string][] = Object.entries(ADVERSARIAL).map(([name, unit]) => [name, repeatTo(unit, size)]);
    inputs.push(["all families mixed", mixed(size)]);
    for (const [name, text] of inputs) {
      const ms = time(text);
      if (ms > worst.ms) worst = { name, ms };
      families.push(`| ${name} | ${label(size)} | ${fixed(ms, 3)} | ${fixed(throughput(size, ms), 1)} |`);
    }
    summary.push(
      `| ${label(size)} | ${fixed(ordinary, 3)} | ${fixed(throughput(size, ordinary), 1)} | ${fixed(worst.ms, 3)} | ${fixed(throughput(size, worst.ms), 1)} | ${worst.name} | ${fixed(worst.ms / ordinary)}× |`,
    );
    console.error(`  ${label(size)} done`);
  }
  console.log(`
| input size | ordinary: CPU ms | ordinary MiB/s | slowest adversarial: CPU ms | adversarial MiB/s | slowest family | adversarial ÷ ordinary |
| ---: | ---: | ---: | ---: | ---: | --- | ---: |
${summary.join("\n")}`);
  if (args.families) {
    console.log(`
| adversarial family | size | CPU ms | MiB/s |
| --- | ---: | ---: | ---: |
${families.join("\n")}`);
  }
}

main();
