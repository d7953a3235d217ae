import { XMLParser, XMLValidator } from "fast-xml-parser";
import { stripBom } from "./common";
import { ReportParseError } from "./types";

/**
 * The XML reading every XML format shares (JUnit, TRX, NUnit): fast-xml-parser with XML's own entities and
 * nothing more, DOCTYPE entity declarations refused, malformed documents reported by line and column.
 */

export type XmlNode = Record<string, unknown>;

const BUILT_IN_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const ENTITY_REFERENCE = /&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|(amp|lt|gt|quot|apos));/g;

function decodeReference(match: string, decimal?: string, hex?: string, named?: string): string {
  if (named) return BUILT_IN_ENTITIES[named]!;
  const codePoint = decimal ? Number(decimal) : Number.parseInt(hex!, 16);
  const valid = codePoint > 0 && codePoint <= 0x10ffff && (codePoint < 0xd800 || codePoint > 0xdfff);
  return valid ? String.fromCodePoint(codePoint) : match;
}

const ENTITY_DECLARATIONS = "a DOCTYPE with entity declarations is not allowed";

/**
 * Entities: exactly what XML defines and nothing more. fast-xml-parser's own decoder only resolves numeric
 * references (`&#xA;`, which Surefire and Go write for every newline) together with the whole HTML entity
 * table, and it expands entities a DOCTYPE declares. This one decodes the five built-ins and numeric
 * references in a single pass (so `&amp;#10;` stays the text `&#10;`) and refuses every declared entity.
 * External (`SYSTEM`) entities are never fetched: the parser rejects them itself.
 */
const xmlEntitiesOnly = {
  setExternalEntities() {},
  setXmlVersion() {},
  reset() {},
  addInputEntities(entities: Record<string, string>) {
    // Reached only through the parser's DOCTYPE reader, which drops entities that reference other
    // entities (never expanded); anything it does hand over is refused.
    if (Object.keys(entities).length > 0) throw new ReportParseError(ENTITY_DECLARATIONS);
  },
  decode: (value: string) => (value.includes("&") ? value.replace(ENTITY_REFERENCE, decodeReference) : value),
};

/**
 * A report declaring entities is refused before any parser sees it (billion laughs and friends).
 * A DOCTYPE can only sit in the prolog, before the first element, so only that stretch is searched.
 */
function rejectEntityDeclarations(xml: string): void {
  const firstElement = /<[A-Za-z_:]/.exec(xml)?.index ?? xml.length;
  const doctype = xml.lastIndexOf("<!DOCTYPE", firstElement);
  if (doctype !== -1 && xml.slice(doctype, firstElement).includes("<!ENTITY")) {
    throw new ReportParseError(ENTITY_DECLARATIONS);
  }
}

/** A parser whose listed elements are always arrays, even when a document has just one. */
export function xmlReader(repeatable: readonly string[]): (xml: string) => XmlNode {
  const tags = new Set(repeatable);
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@",
    ignoreDeclaration: true,
    ignorePiTags: true,
    // TRX and NUnit declare a default namespace; a prefixed one (`x:testsuite`) reads as its local name.
    removeNSPrefix: true,
    // Text stays text ("123" is not a number) and untrimmed, so CDATA and text pieces join as written.
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    processEntities: true,
    entityDecoder: xmlEntitiesOnly,
    isArray: (tagName, _jPath, _isLeaf, isAttribute) => !isAttribute && tags.has(tagName),
  });
  return (content: string) => {
    const xml = stripBom(content);
    rejectEntityDeclarations(xml);
    const validation = XMLValidator.validate(xml);
    if (validation !== true) {
      const { msg, line, col } = validation.err;
      throw new ReportParseError(`malformed XML at line ${line}${col ? `, column ${col}` : ""}: ${msg}`, {
        line,
        column: col || undefined,
      });
    }
    try {
      return parser.parse(xml) as XmlNode;
    } catch (error) {
      if (error instanceof ReportParseError) throw error;
      throw new ReportParseError(`malformed XML: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
}

/** Children named `tag`; an element holding only text comes back from the parser as a bare string. */
export function elements(node: XmlNode | undefined, tag: string): XmlNode[] {
  const value = node?.[tag];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((item) =>
    typeof item === "object" && item !== null ? (item as XmlNode) : { "#text": String(item) },
  );
}

/** A trimmed attribute value; empty counts as absent (gotestsum writes `classname=""` for TestMain). */
export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const value = node?.[`@${name}`];
  const trimmed = typeof value === "string" ? value.trim() : "";
  return trimmed === "" ? undefined : trimmed;
}

/** An element's text (CDATA and text pieces joined), trimmed. */
export function textOf(node: XmlNode | undefined): string {
  const value = node?.["#text"];
  return typeof value === "string" ? value.trim() : "";
}

/** The name of the document's root element, for "not a … report" messages. */
export function rootName(document: XmlNode): string {
  return Object.keys(document).find((key) => !key.startsWith("#") && !key.startsWith("?")) ?? "";
}
