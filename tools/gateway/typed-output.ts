import { parse as parseArray } from "postgres-array";

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
  // postgres-array reads PostgreSQL's array text (`{1,NULL,"a \\"b\\""}`, `{{1,2},{3,4}}`, `[0:1]={…}`).
  return (text) => (text === null ? null : mapNested(parseArray(text), convertElement));
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

/** Applies `convert` to every element of a parsed (possibly nested) array; NULL stays null. */
function mapNested(value: unknown, convert: ValueConverter): unknown {
  return Array.isArray(value) ? value.map((v) => mapNested(v, convert)) : convert(value as string | null);
}
