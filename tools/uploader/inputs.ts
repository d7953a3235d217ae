/**
 * Reading the inputs: files and globs expanded in argument order, each file read as a test report (its
 * format detected by content: JUnit XML, TRX, NUnit, jest/vitest, Mocha, Playwright, pytest, go test,
 * RSpec, dart/flutter, CTRF), an array of test results, or a whole payload.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { glob } from "tinyglobby";
import { payloadSchema, type ReportFormat } from "../../src/contract/ingestion.ts";
import { detectFormat } from "../../src/ingestion/formats/detect.ts";
import { UploadError } from "./errors.ts";

export type LoadedInput =
  | { kind: "junit"; source: string; content: string }
  | { kind: "report"; source: string; format: Exclude<ReportFormat, "junit">; content: string }
  | { kind: "tests"; source: string; tests: unknown[] }
  | { kind: "payload"; source: string; payload: Record<string, unknown> };

/** Expands files and globs in argument order; glob matches sorted, so the same tree gives the same order. */
export async function expandInputs(patterns: string[], cwd: string): Promise<string[]> {
  const files: string[] = [];
  const seen = new Set<string>();
  for (const pattern of patterns) {
    const literal = path.resolve(cwd, pattern);
    const info = await stat(literal).catch(() => undefined);
    let matches: string[];
    if (info?.isFile()) {
      matches = [literal];
    } else if (info?.isDirectory()) {
      throw new UploadError(`"${pattern}" is a directory; give files or a glob such as "${pattern}/**/*.xml"`);
    } else {
      matches = (
        await glob(pattern, { cwd, absolute: true, onlyFiles: true, ignore: ["**/node_modules/**", "**/.git/**"] })
      ).sort();
      if (matches.length === 0) throw new UploadError(`no files match "${pattern}"`);
    }
    for (const file of matches) {
      const resolved = path.resolve(file);
      if (!seen.has(resolved)) {
        seen.add(resolved);
        files.push(resolved);
      }
    }
  }
  return files;
}

const PAYLOAD_FIELDS = new Set(Object.keys(payloadSchema.shape));

export async function loadInput(file: string, cwd: string): Promise<LoadedInput> {
  const relative = path.relative(cwd, file);
  const source = relative && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : file;
  let text: string;
  try {
    text = (await readFile(file, "utf8")).replace(/^\uFEFF/, "");
  } catch (error) {
    throw new UploadError(`cannot read ${source}: ${(error as Error).message}`);
  }
  const format = detectFormat(text);
  if (format === "junit") return { kind: "junit", source, content: text };
  if (format) return { kind: "report", source, format, content: text };
  const ext = path.extname(file).toLowerCase();
  const head = text.trimStart()[0];
  const isXml = ext === ".xml" || (ext !== ".json" && head === "<");
  const isJson = ext === ".json" || (ext !== ".xml" && (head === "{" || head === "["));
  if (isXml) return { kind: "junit", source, content: text };
  if (!isJson) throw new UploadError(`${source}: not JUnit XML (.xml) or JSON (.json)`);

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UploadError(`${source}: invalid JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(parsed)) return { kind: "tests", source, tests: parsed };
  if (parsed && typeof parsed === "object" && ("tests" in parsed || "reports" in parsed)) {
    const payload = parsed as Record<string, unknown>;
    // Said here, by file, rather than as a schema issue of a body that merged several sources.
    const unknown = Object.keys(payload).filter((k) => !PAYLOAD_FIELDS.has(k));
    if (unknown.length > 0) {
      throw new UploadError(`${source}: unknown top-level field(s) ${unknown.join(", ")} (the service rejects them)`);
    }
    if ("tests" in payload && "reports" in payload) {
      throw new UploadError(`${source}: has both "tests" and "reports"; a payload carries exactly one`);
    }
    return { kind: "payload", source, payload };
  }
  throw new UploadError(`${source}: JSON must be an array of test results or a payload object with "tests"`);
}
