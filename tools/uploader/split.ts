/**
 * Turns the inputs into uploads ("parts") that each respect the service's limits: at most `maxResults`
 * results and at most `maxBytes` of serialised body. Every part carries its own idempotency key, derived
 * only from what it contains, so a CI job that runs the uploader again sends the same keys and the server
 * reports duplicates instead of storing the results twice.
 *
 * A JUnit file too large for one upload is cut at testcase boundaries into several complete documents.
 * That is done on the text, not by parsing and re-serialising: every testcase, every suite start tag (with
 * all its attributes) and every <properties> block is copied byte for byte, so nothing a parser or a
 * builder might normalise (entities, CDATA, attribute order, whitespace in messages) changes. The suite
 * attributes are kept as they are, so `tests="…"` counts describe the whole suite, not the part; the
 * server counts testcases itself.
 */
import { createHash } from "node:crypto";
import { isValidWebhookId } from "./sign.ts";

export const FRAMEWORKS = ["junit", "jest", "pytest", "playwright", "mocha", "vitest", "go", "unknown"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/** Top-level payload fields (spec field names). */
export interface PayloadFields {
  repo_id: string;
  commit_sha: string;
  run_id: string;
  framework: Framework;
  branch?: string;
  pull_request?: string;
  environment?: Record<string, string>;
  metadata?: Record<string, unknown>;
  /** Given by a JSON payload file: used as the key (suffixed per part when the group is split). */
  idempotency_key?: string;
}

export interface TestItem {
  value: unknown;
  source: string;
}

export interface ReportItem {
  format: string;
  content: string;
  source: string;
}

/** Inputs that share one set of top-level fields. A body holds `tests` or `reports`, never both. */
export type UploadGroup =
  | { kind: "tests"; fields: PayloadFields; tests: TestItem[] }
  | { kind: "reports"; fields: PayloadFields; reports: ReportItem[] };

export interface Part {
  /** 0-based position among all parts of this upload. */
  index: number;
  total: number;
  key: string;
  kind: "tests" | "reports";
  fields: PayloadFields;
  /** The exact bytes to sign and send (UTF-8 JSON). */
  body: Uint8Array<ArrayBuffer>;
  /** Test results (for JUnit: testcase elements) in this part. */
  results: number;
  sources: string[];
}

export interface Limits {
  maxResults: number;
  maxBytes: number;
}

/** A problem with the inputs that splitting cannot work around. */
export class SplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SplitError";
  }
}

/** Bytes a string takes inside a JSON string literal (escapes included, quotes not). Additive over concatenation. */
export function escapedLength(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), "utf8") - 2;
}

/** Deterministic key of one part: the same inputs in the same CI run always give the same key. */
export function idempotencyKey(input: {
  repoId: string;
  commit: string;
  runId: string;
  partIndex: number;
  contentHash: string;
}): string {
  const material = ["anchorpipe-upload/1", input.repoId, input.commit, input.runId, input.partIndex, input.contentHash];
  return `ap_${createHash("sha256").update(material.join("\n")).digest("hex")}`;
}

/** The longest key a part can carry; bodies are measured with room for it. */
const MAX_KEY_LENGTH = 255;

function envelope(fields: PayloadFields, key: string | undefined, kind: Part["kind"], items: unknown[]) {
  const body: Record<string, unknown> = {
    repo_id: fields.repo_id,
    commit_sha: fields.commit_sha,
    run_id: fields.run_id,
    framework: fields.framework,
  };
  if (fields.branch !== undefined) body.branch = fields.branch;
  if (fields.pull_request !== undefined) body.pull_request = fields.pull_request;
  if (fields.environment !== undefined) body.environment = fields.environment;
  if (fields.metadata !== undefined) body.metadata = fields.metadata;
  if (key !== undefined) body.idempotency_key = key;
  body[kind] = items;
  return body;
}

interface Draft {
  group: UploadGroup;
  items: unknown[];
  results: number;
  sources: Set<string>;
}

interface Sized {
  value: unknown;
  bytes: number;
  results: number;
  source: string;
}

/** The service takes at most this many entries in `reports` per body. */
export const MAX_REPORTS_PER_BODY = 100;

/** Greedy packing, in input order, so the same inputs always give the same parts. */
function pack(group: UploadGroup, items: Sized[], envelopeBytes: number, limits: Limits): Draft[] {
  const maxItems = group.kind === "reports" ? MAX_REPORTS_PER_BODY : Number.POSITIVE_INFINITY;
  const drafts: Draft[] = [];
  let current: Draft | undefined;
  let bytes = 0;
  for (const item of items) {
    if (envelopeBytes + item.bytes > limits.maxBytes) {
      throw new SplitError(
        `${item.source}: one entry is ${item.bytes} bytes, more than fits in an upload of --max-bytes ${limits.maxBytes}`,
      );
    }
    if (
      current &&
      (bytes + item.bytes > limits.maxBytes ||
        current.results + item.results > limits.maxResults ||
        current.items.length >= maxItems)
    ) {
      current = undefined;
    }
    if (!current) {
      current = { group, items: [], results: 0, sources: new Set() };
      drafts.push(current);
      bytes = envelopeBytes;
    }
    current.items.push(item.value);
    current.results += item.results;
    current.sources.add(item.source);
    bytes += item.bytes;
  }
  return drafts;
}

export interface Plan {
  parts: Part[];
  warnings: string[];
}

/** Splits every group into parts within the limits and gives each its key and final body. */
export function planParts(groups: UploadGroup[], limits: Limits): Plan {
  const warnings: string[] = [];
  const drafts: Draft[] = [];
  for (const group of groups) {
    const placeholder = "k".repeat(MAX_KEY_LENGTH);
    // +1 per item for the comma: measuring one too many is harmless.
    const envelopeBytes = Buffer.byteLength(JSON.stringify(envelope(group.fields, placeholder, group.kind, [])));
    let sized: Sized[];
    if (group.kind === "tests") {
      sized = group.tests.map((t) => ({
        value: t.value,
        bytes: Buffer.byteLength(JSON.stringify(t.value)) + 1,
        results: 1,
        source: t.source,
      }));
    } else {
      sized = [];
      for (const report of group.reports) {
        const wrapper = Buffer.byteLength(JSON.stringify({ format: report.format, content: "" })) + 1;
        const room = limits.maxBytes - envelopeBytes - wrapper;
        const bytes = escapedLength(report.content);
        const results = report.format === "junit" ? countTestcases(report.content) : 0;
        if (report.format === "junit" && (bytes > room || results > limits.maxResults)) {
          const split = splitJUnitXml(report.content, { maxBytes: room, maxResults: limits.maxResults }, report.source);
          warnings.push(...split.warnings);
          for (const doc of split.documents) {
            sized.push({
              value: { format: report.format, content: doc.content },
              bytes: wrapper + escapedLength(doc.content),
              results: doc.results,
              source: report.source,
            });
          }
        } else {
          sized.push({
            value: { format: report.format, content: report.content },
            bytes: wrapper + bytes,
            results,
            source: report.source,
          });
        }
      }
    }
    drafts.push(...pack(group, sized, envelopeBytes, limits));
  }

  const parts = drafts.map((draft, index): Part => {
    const { fields, kind } = draft.group;
    const contentHash = createHash("sha256")
      .update(JSON.stringify(envelope(fields, undefined, kind, draft.items)))
      .digest("hex");
    let key = idempotencyKey({
      repoId: fields.repo_id,
      commit: fields.commit_sha,
      runId: fields.run_id,
      partIndex: index,
      contentHash,
    });
    if (fields.idempotency_key !== undefined) {
      const siblings = drafts.filter((d) => d.group === draft.group);
      key = siblings.length === 1 ? fields.idempotency_key : `${fields.idempotency_key}.${siblings.indexOf(draft) + 1}`;
      if (!isValidWebhookId(key)) {
        throw new SplitError(`idempotency_key "${key}" must be 1–255 printable ASCII characters without spaces`);
      }
    }
    const body = new TextEncoder().encode(JSON.stringify(envelope(fields, key, kind, draft.items)));
    if (body.length > limits.maxBytes) {
      // The measurements above are exact or overestimate; reaching this is a bug, not an input problem.
      throw new Error(`internal: part ${index + 1} is ${body.length} bytes, over the ${limits.maxBytes} limit`);
    }
    return {
      index,
      total: drafts.length,
      key,
      kind,
      fields,
      body,
      results: draft.results,
      sources: [...draft.sources],
    };
  });
  return { parts, warnings };
}

// ---------------------------------------------------------------------------------------------------------
// A minimal XML scanner: enough structure to cut a JUnit document at element boundaries. It understands
// comments, CDATA, processing instructions, DOCTYPE and quoted attribute values (which may contain '>'),
// and it checks that tags nest. Entities and namespaces do not matter for cutting.

export class XmlSyntaxError extends Error {
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(message);
    this.name = "XmlSyntaxError";
    this.offset = offset;
  }
}

export interface XmlNode {
  name: string;
  start: number;
  /** Offset just after the start tag. */
  openEnd: number;
  /** Offset just after the end tag (or the self-closing start tag). */
  end: number;
  selfClosing: boolean;
  children: XmlNode[];
}

function skipPast(xml: string, terminator: string, from: number, what: string, at: number): number {
  const end = xml.indexOf(terminator, from);
  if (end === -1) throw new XmlSyntaxError(`unterminated ${what}`, at);
  return end + terminator.length;
}

/** Offset of the '>' that ends the tag starting at `lt`, skipping quoted attribute values. */
function tagEnd(xml: string, lt: number): number {
  let quote = "";
  for (let j = lt + 1; j < xml.length; j++) {
    const c = xml[j];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ">") return j;
    else if (c === "<") break;
  }
  throw new XmlSyntaxError("unterminated tag", lt);
}

/** <!DOCTYPE …> may hold an internal subset in brackets, with '>' inside it. */
function declarationEnd(xml: string, lt: number): number {
  let depth = 0;
  let quote = "";
  for (let j = lt + 2; j < xml.length; j++) {
    const c = xml[j];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === ">" && depth <= 0) return j + 1;
  }
  throw new XmlSyntaxError("unterminated declaration", lt);
}

export function scanXml(xml: string): XmlNode {
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (lt === -1) break;
    if (xml.startsWith("<!--", lt)) {
      i = skipPast(xml, "-->", lt + 4, "comment", lt);
    } else if (xml.startsWith("<![CDATA[", lt)) {
      i = skipPast(xml, "]]>", lt + 9, "CDATA section", lt);
    } else if (xml.startsWith("<?", lt)) {
      i = skipPast(xml, "?>", lt + 2, "processing instruction", lt);
    } else if (xml.startsWith("<!", lt)) {
      i = declarationEnd(xml, lt);
    } else if (xml[lt + 1] === "/") {
      const gt = xml.indexOf(">", lt);
      if (gt === -1) throw new XmlSyntaxError("unterminated end tag", lt);
      const name = xml.slice(lt + 2, gt).trim();
      const open = stack.pop();
      if (!open || open.name !== name) {
        throw new XmlSyntaxError(`</${name}> does not close ${open ? `<${open.name}>` : "any open element"}`, lt);
      }
      open.end = gt + 1;
      i = gt + 1;
    } else {
      const gt = tagEnd(xml, lt);
      const name = /^[^\s/>]+/.exec(xml.slice(lt + 1, Math.min(gt, lt + 256)))?.[0];
      if (!name) throw new XmlSyntaxError("a tag without a name", lt);
      const selfClosing = xml[gt - 1] === "/";
      const node: XmlNode = { name, start: lt, openEnd: gt + 1, end: gt + 1, selfClosing, children: [] };
      const parent = stack.at(-1);
      if (parent) parent.children.push(node);
      else if (root) throw new XmlSyntaxError("a second root element", lt);
      else root = node;
      if (!selfClosing) stack.push(node);
      i = gt + 1;
    }
  }
  const unclosed = stack.at(-1);
  if (unclosed) throw new XmlSyntaxError(`<${unclosed.name}> is never closed`, unclosed.start);
  if (!root) throw new XmlSyntaxError("no root element", 0);
  return root;
}

function lineOf(xml: string, offset: number): number {
  let line = 1;
  for (let i = xml.indexOf("\n"); i !== -1 && i < offset; i = xml.indexOf("\n", i + 1)) line++;
  return line;
}

/** Attribute values as written (entities left encoded; only used to compare identities). */
function attributes(startTag: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of startTag.matchAll(/([^\s=/<>"']+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    found.set(m[1]!, m[2] ?? m[3] ?? "");
  }
  return found;
}

/** Testcase elements in a JUnit document; a rough count when it is not well-formed (the server will say why). */
export function countTestcases(xml: string): number {
  try {
    let count = 0;
    const visit = (node: XmlNode) => {
      if (node.name === "testcase") count++;
      else for (const child of node.children) visit(child);
    };
    visit(scanXml(xml));
    return count;
  } catch (error) {
    if (!(error instanceof XmlSyntaxError)) throw error;
    return xml.match(/<testcase[\s/>]/g)?.length ?? 0;
  }
}

const CONTAINERS = new Set(["testsuites", "testsuite"]);
const OUTPUT = new Set(["system-out", "system-err"]);

interface Container {
  open: string;
  headers: string[];
  close: string;
  bytes: number;
}

interface Unit {
  path: Container[];
  /** Testcase elements of one identity, or one other element; each rendered on its own line. */
  lines: string[];
  nodes: XmlNode[];
  bytes: number;
  results: number;
  what: string;
}

/** What a line costs in the JSON body: its escaped text plus the "\n" after it (two bytes once escaped). */
function lineBytes(line: string): number {
  return escapedLength(line) + 2;
}

function sumLines(lines: string[]): number {
  return lines.reduce((sum, line) => sum + lineBytes(line), 0);
}

export interface SplitDocument {
  content: string;
  results: number;
}

/**
 * Cuts one JUnit document into documents whose content fits in `limits.maxBytes` (measured as escaped JSON
 * string bytes) with at most `limits.maxResults` testcases each. Each document repeats the XML prolog, the
 * start tags and <properties> of the suites its testcases belong to. Testcases of the same identity (classname
 * and name) in a suite stay together: gotestsum --rerun-fails writes each attempt as its own testcase, and
 * the server folds attempts only within one upload.
 */
export function splitJUnitXml(
  xml: string,
  limits: Limits,
  source: string,
): { documents: SplitDocument[]; warnings: string[] } {
  let root: XmlNode;
  try {
    root = scanXml(xml);
  } catch (error) {
    if (!(error instanceof XmlSyntaxError)) throw error;
    throw new SplitError(
      `${source}: too large for one upload, and cannot be split: not well-formed XML at line ${lineOf(xml, error.offset)}: ${error.message}`,
    );
  }
  if (!CONTAINERS.has(root.name) || root.selfClosing) {
    throw new SplitError(`${source}: too large for one upload, and its root <${root.name}> is not a JUnit suite`);
  }

  const warnings: string[] = [];
  const prolog = xml
    .slice(0, root.start)
    .replace(/^\uFEFF/, "")
    .trim();
  const prologBytes = prolog ? lineBytes(prolog) : 0;
  const units: Unit[] = [];

  const walk = (node: XmlNode, path: Container[]) => {
    const container: Container = {
      open: xml.slice(node.start, node.openEnd),
      headers: [],
      close: `</${node.name}>`,
      bytes: 0,
    };
    const here = [...path, container];
    const byIdentity = new Map<string, Unit>();
    for (const child of node.children) {
      const text = xml.slice(child.start, child.end);
      if (CONTAINERS.has(child.name) && !child.selfClosing) {
        walk(child, here);
      } else if (child.name === "testcase") {
        const attrs = attributes(xml.slice(child.start, child.openEnd));
        const identity = `${attrs.get("classname") ?? ""}\u0000${attrs.get("name") ?? ""}`;
        const unit = byIdentity.get(identity);
        if (unit) {
          unit.lines.push(text);
          unit.nodes.push(child);
          unit.results++;
        } else {
          const created: Unit = {
            path: here,
            lines: [text],
            nodes: [child],
            bytes: 0,
            results: 1,
            what: `testcase "${attrs.get("name") ?? "?"}"`,
          };
          byIdentity.set(identity, created);
          units.push(created);
        }
      } else if (child.name === "properties") {
        container.headers.push(text);
      } else {
        units.push({ path: here, lines: [text], nodes: [], bytes: 0, results: 0, what: `<${child.name}>` });
      }
    }
    container.bytes = lineBytes(container.open) + sumLines(container.headers) + lineBytes(container.close);
  };
  walk(root, []);

  const fitting: Unit[] = [];
  for (const unit of units) {
    unit.bytes = sumLines(unit.lines);
    const frame = prologBytes + unit.path.reduce((sum, c) => sum + c.bytes, 0);
    if (frame + unit.bytes > limits.maxBytes) {
      if (unit.results === 0) {
        warnings.push(`${source}: left out a ${unit.bytes}-byte suite-level ${unit.what}: too large for one upload`);
        continue;
      }
      // A testcase with a huge log: its captured output is what can go; the result and failure stay.
      unit.lines = unit.nodes.map((node) => withoutOutput(xml, node));
      const before = unit.bytes;
      unit.bytes = sumLines(unit.lines);
      if (frame + unit.bytes > limits.maxBytes) {
        throw new SplitError(
          `${source}: ${unit.what} is ${unit.bytes} bytes even without its output, more than fits in one upload (--max-bytes)`,
        );
      }
      warnings.push(`${source}: ${unit.what}: left out ${before - unit.bytes} bytes of system-out/system-err to fit`);
    }
    if (unit.results > limits.maxResults) {
      throw new SplitError(`${source}: ${unit.what} appears ${unit.results} times, more than --max-results`);
    }
    fitting.push(unit);
  }

  const documents: SplitDocument[] = [];
  let current: Unit[] = [];
  let open = new Set<Container>();
  let bytes = prologBytes;
  let results = 0;
  const flush = () => {
    if (current.length === 0) return;
    if (results === 0) {
      warnings.push(`${source}: left out ${current.map((u) => u.what).join(", ")}: no testcase to send them with`);
    } else {
      documents.push({ content: render(prolog, current), results });
    }
    current = [];
    open = new Set();
    bytes = prologBytes;
    results = 0;
  };
  for (const unit of fitting) {
    const cost = () => unit.bytes + unit.path.reduce((sum, c) => (open.has(c) ? sum : sum + c.bytes), 0);
    if (bytes + cost() > limits.maxBytes || results + unit.results > limits.maxResults) flush();
    bytes += cost();
    for (const c of unit.path) open.add(c);
    current.push(unit);
    results += unit.results;
  }
  flush();
  return { documents, warnings };
}

/** The testcase element's text with its <system-out>/<system-err> children removed. */
function withoutOutput(xml: string, node: XmlNode): string {
  let text = "";
  let at = node.start;
  for (const child of node.children) {
    if (!OUTPUT.has(child.name)) continue;
    text += xml.slice(at, child.start);
    at = child.end;
  }
  return text + xml.slice(at, node.end);
}

/**
 * Units arrive in document order, so a suite's units are contiguous and each suite is opened and closed
 * once per document: the size accounting in splitJUnitXml relies on that.
 */
function render(prolog: string, units: Unit[]): string {
  const lines: string[] = prolog ? [prolog] : [];
  let stack: Container[] = [];
  for (const unit of units) {
    let common = 0;
    while (common < stack.length && common < unit.path.length && stack[common] === unit.path[common]) common++;
    for (let k = stack.length - 1; k >= common; k--) lines.push(stack[k]!.close);
    for (let k = common; k < unit.path.length; k++) lines.push(unit.path[k]!.open, ...unit.path[k]!.headers);
    stack = unit.path;
    lines.push(...unit.lines);
  }
  for (let k = stack.length - 1; k >= 0; k--) lines.push(stack[k]!.close);
  return `${lines.join("\n")}\n`;
}
