/**
 * Typed JSON output, used when a client does not ask for `Neon-Raw-Text-Output`.
 * Mirrors Neon's proxy (json.rs): booleans, 2/4-byte integers and floats become
 * JSON values, json/jsonb is embedded, arrays become JSON arrays converted
 * element by element; everything else (int8, numeric, dates, uuid, bytea,
 * enums …) stays the text PostgreSQL produced.
 */

export const TYPE_OID = {
  bool: 16,
  int2: 21,
  int4: 23,
  float4: 700,
  float8: 701,
  json: 114,
  jsonb: 3802,
} as const;

/** Element type of an array type, as read from pg_type (0 when the type is not an array). */
export type ArrayElementLookup = (typeOid: number) => Promise<number>;

export type ValueConverter = (text: string | null) => unknown;

export async function converterFor(typeOid: number, elementOf: ArrayElementLookup): Promise<ValueConverter> {
  const scalar = scalarConverter(typeOid);
  if (scalar) return scalar;
  const element = await elementOf(typeOid);
  if (element === 0) return (text) => text;
  const convertElement = await converterFor(element, elementOf);
  return (text) => (text === null ? null : mapNested(parseArrayLiteral(text), convertElement));
}

function scalarConverter(typeOid: number): ValueConverter | undefined {
  switch (typeOid) {
    case TYPE_OID.bool:
      return (text) => (text === null ? null : text === "t");
    case TYPE_OID.int2:
    case TYPE_OID.int4:
      return (text) => (text === null ? null : Number(text));
    case TYPE_OID.float4:
    case TYPE_OID.float8:
      return (text) => {
        if (text === null) return null;
        const n = Number(text);
        return Number.isFinite(n) ? n : text;
      };
    case TYPE_OID.json:
    case TYPE_OID.jsonb:
      return (text) => (text === null ? null : JSON.parse(text));
    default:
      return undefined;
  }
}

type Nested = string | null | Nested[];

function mapNested(value: Nested, convert: ValueConverter): unknown {
  return Array.isArray(value) ? value.map((v) => mapNested(v, convert)) : convert(value);
}

/** Parses PostgreSQL's text form of an array, e.g. `{1,NULL,"a \"b\""}` or `{{1,2},{3,4}}`. */
function parseArrayLiteral(text: string): Nested[] {
  let pos = 0;
  // Arrays with non-default bounds are printed as `[0:1]={...}`.
  if (text.startsWith("[")) pos = text.indexOf("=") + 1;

  function parseArray(): Nested[] {
    const items: Nested[] = [];
    pos++; // "{"
    if (text[pos] === "}") {
      pos++;
      return items;
    }
    for (;;) {
      items.push(parseItem());
      const ch = text[pos++];
      if (ch === "}") return items;
      if (ch !== ",") throw new Error(`malformed array literal at ${pos - 1}`);
    }
  }

  function parseItem(): Nested {
    if (text[pos] === "{") return parseArray();
    if (text[pos] === '"') {
      let out = "";
      pos++;
      while (text[pos] !== '"') {
        if (pos >= text.length) throw new Error("unterminated quoted array element");
        if (text[pos] === "\\") pos++;
        out += text[pos++];
      }
      pos++;
      return out;
    }
    const start = pos;
    while (pos < text.length && text[pos] !== "," && text[pos] !== "}") pos++;
    const raw = text.slice(start, pos);
    return raw === "NULL" ? null : raw;
  }

  return parseArray();
}
