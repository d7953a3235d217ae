/**
 * Cuts a JUnit document that is too large for one upload into several complete documents, at testcase
 * boundaries.
 *
 * saxes (a streaming, well-formedness-checking XML parser) finds the elements and reports where each one
 * starts and ends in the text; the pieces are then copied from the original text, not re-serialised: every
 * testcase, every suite start tag (with all its attributes) and every <properties> block keeps its exact
 * bytes, so nothing a parser or a builder might normalise (entities, CDATA, attribute order, whitespace in
 * messages) changes. The suite attributes are kept as they are, so `tests="…"` counts describe the whole
 * suite, not the part; the server counts testcases itself.
 */
import { SaxesParser } from "saxes";
import { UploadError } from "./errors.ts";

export interface SplitLimits {
  /** Bytes of the document once escaped inside a JSON string. */
  maxBytes: number;
  maxResults: number;
}

/** Bytes a string takes inside a JSON string literal (escapes included, quotes not). Additive over concatenation. */
export function escapedLength(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), "utf8") - 2;
}

export class XmlSyntaxError extends Error {
  constructor(message: string) {
    // saxes says "line:column: what".
    super(message.replace(/^(\d+):(\d+): /, "line $1, column $2: "));
    this.name = "XmlSyntaxError";
  }
}

export interface XmlElement {
  name: string;
  /** Offset of the start tag's "<". */
  start: number;
  /** Offset just after the start tag. */
  openEnd: number;
  /** Offset just after the end tag (or the self-closing start tag). */
  end: number;
  selfClosing: boolean;
  /** Decoded attribute values. */
  attributes: Record<string, string>;
  children: XmlElement[];
}

/**
 * Problems inside text that do not change where elements start and end: control characters in captured
 * output (real CI logs are full of ANSI escapes), HTML entities, a stray "]]>". The service's own parser
 * decides about those; refusing to cut such a report here would only lose it.
 */
const CONTENT_ONLY =
  /(?:disallowed character\.|undefined entity\.|disallowed character in entity name\.|malformed character entity\.|"\]\]>" is disallowed in char data\.)$/;

/** The element tree of a document, with the offsets of every element in `xml` (a JavaScript string index). */
export function readElements(xml: string): XmlElement {
  const parser = new SaxesParser({ position: true, xmlns: false });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let tagStart = 0;
  parser.on("error", (error) => {
    if (!CONTENT_ONLY.test(error.message)) throw new XmlSyntaxError(error.message);
  });
  // Fired once the name has been read: the "<" is the last one before the parser's position (names hold none).
  parser.on("opentagstart", () => {
    tagStart = xml.lastIndexOf("<", parser.position - 1);
  });
  parser.on("opentag", (tag) => {
    const element: XmlElement = {
      name: tag.name,
      start: tagStart,
      openEnd: parser.position,
      end: parser.position,
      selfClosing: tag.isSelfClosing,
      attributes: tag.attributes,
      children: [],
    };
    const parent = stack.at(-1);
    if (parent) parent.children.push(element);
    else root = element;
    stack.push(element);
  });
  parser.on("closetag", () => {
    const element = stack.pop();
    if (element) element.end = parser.position;
  });
  parser.write(xml).close();
  if (!root) throw new XmlSyntaxError("no root element");
  return root;
}

/** Testcase elements in a JUnit document; a rough count when it is not well-formed (the server will say why). */
export function countTestcases(xml: string): number {
  try {
    let count = 0;
    const visit = (element: XmlElement) => {
      if (element.name === "testcase") count++;
      else for (const child of element.children) visit(child);
    };
    visit(readElements(xml));
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
  elements: XmlElement[];
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
  limits: SplitLimits,
  source: string,
): { documents: SplitDocument[]; warnings: string[] } {
  let root: XmlElement;
  try {
    root = readElements(xml);
  } catch (error) {
    if (!(error instanceof XmlSyntaxError)) throw error;
    throw new UploadError(
      `${source}: too large for one upload, and cannot be split: not well-formed XML at ${error.message}`,
    );
  }
  if (!CONTAINERS.has(root.name) || root.selfClosing) {
    throw new UploadError(`${source}: too large for one upload, and its root <${root.name}> is not a JUnit suite`);
  }

  const warnings: string[] = [];
  const prolog = xml
    .slice(0, root.start)
    .replace(/^\uFEFF/, "")
    .trim();
  const prologBytes = prolog ? lineBytes(prolog) : 0;
  const units: Unit[] = [];

  const walk = (element: XmlElement, path: Container[]) => {
    const container: Container = {
      open: xml.slice(element.start, element.openEnd),
      headers: [],
      close: `</${element.name}>`,
      bytes: 0,
    };
    const here = [...path, container];
    const byIdentity = new Map<string, Unit>();
    for (const child of element.children) {
      const text = xml.slice(child.start, child.end);
      if (CONTAINERS.has(child.name) && !child.selfClosing) {
        walk(child, here);
      } else if (child.name === "testcase") {
        const { classname = "", name = "" } = child.attributes;
        const identity = `${classname}\u0000${name}`;
        const unit = byIdentity.get(identity);
        if (unit) {
          unit.lines.push(text);
          unit.elements.push(child);
          unit.results++;
        } else {
          const created: Unit = {
            path: here,
            lines: [text],
            elements: [child],
            bytes: 0,
            results: 1,
            what: `testcase "${name || "?"}"`,
          };
          byIdentity.set(identity, created);
          units.push(created);
        }
      } else if (child.name === "properties") {
        container.headers.push(text);
      } else {
        units.push({ path: here, lines: [text], elements: [], bytes: 0, results: 0, what: `<${child.name}>` });
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
      unit.lines = unit.elements.map((element) => withoutOutput(xml, element));
      const before = unit.bytes;
      unit.bytes = sumLines(unit.lines);
      if (frame + unit.bytes > limits.maxBytes) {
        throw new UploadError(
          `${source}: ${unit.what} is ${unit.bytes} bytes even without its output, more than fits in one upload (--max-bytes)`,
        );
      }
      warnings.push(`${source}: ${unit.what}: left out ${before - unit.bytes} bytes of system-out/system-err to fit`);
    }
    if (unit.results > limits.maxResults) {
      throw new UploadError(`${source}: ${unit.what} appears ${unit.results} times, more than --max-results`);
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
function withoutOutput(xml: string, element: XmlElement): string {
  let text = "";
  let at = element.start;
  for (const child of element.children) {
    if (!OUTPUT.has(child.name)) continue;
    text += xml.slice(at, child.start);
    at = child.end;
  }
  return text + xml.slice(at, element.end);
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
