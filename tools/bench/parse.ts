/**
 * `npm run bench:parse`: how fast each report format parses, in MB/s of report, for the largest real
 * report of each format in test/fixtures/ (the 1.1 MB FluentValidation TRX, Mocha's own 610 KB suite,
 * jest's 615 KB jest-junit report…). The parsers are the Worker's own modules, run here in Node's V8: the
 * same engine as workerd, so the figures carry over to the edge within the noise of a shared machine.
 *
 * Each format's report is parsed `--warmup` times unmeasured, then `--repeats` times; the median is reported.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { parseReport, REPORT_FORMATS, type ReportFormat } from "../../src/ingestion/formats/index.ts";

const FIXTURES = join(import.meta.dirname, "../../test/fixtures");
/** The fixture folder of each format (the folders are named after the formats). */
const FOLDER: Record<ReportFormat, string> = Object.fromEntries(REPORT_FORMATS.map((f) => [f, f])) as Record<
  ReportFormat,
  string
>;

function largestFixture(format: ReportFormat): { file: string; content: string } {
  const folder = join(FIXTURES, FOLDER[format]);
  const candidates = readdirSync(folder)
    .filter((name) => !name.endsWith(".md") && !name.startsWith("malformed") && !name.startsWith("billion"))
    .map((name) => ({ name, size: statSync(join(folder, name)).size }))
    .sort((a, b) => b.size - a.size);
  const file = candidates[0]!.name;
  return { file: `${FOLDER[format]}/${file}`, content: readFileSync(join(folder, file), "utf8") };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/**
 * Parse throughput of every format's largest real report, as a printable table (bench:parse prints it, and
 * bench:ingest prints it after the upload figures).
 */
export function parseThroughput(REPEATS: number, WARMUP: number): string {
  const lines: string[] = [];
  const rows: string[][] = [["format", "report", "size", "results", "median ms", "MB/s"]];
  for (const format of REPORT_FORMATS) {
    const { file, content } = largestFixture(format);
    const bytes = Buffer.byteLength(content);
    let results = 0;
    for (let i = 0; i < WARMUP; i++) results = parseReport(format, content).results.length;
    const times: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      const started = performance.now();
      parseReport(format, content);
      times.push(performance.now() - started);
    }
    const ms = median(times);
    rows.push([
      format,
      file,
      `${(bytes / 1024).toFixed(0)} KB`,
      String(results),
      ms.toFixed(2),
      (bytes / 1e6 / (ms / 1000)).toFixed(1),
    ]);
  }

  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const [index, row] of rows.entries()) {
    lines.push(
      row
        .map((cell, column) => (column >= 2 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
        .join("  "),
    );
    if (index === 0) lines.push(widths.map((width) => "-".repeat(width)).join("  "));
  }
  lines.push(`\nmedian of ${REPEATS} parses after ${WARMUP} warm-up parses; MB = 10^6 bytes of report`);
  return lines.join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values: args } = parseArgs({
    options: {
      repeats: { type: "string", default: "15" },
      warmup: { type: "string", default: "3" },
    },
  });
  console.log(parseThroughput(Number(args.repeats), Number(args.warmup)));
}
