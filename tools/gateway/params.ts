/**
 * Neon binds every parameter as text with an unspecified type (OID 0) and lets
 * PostgreSQL infer the type. The JS driver already sends strings or null; other
 * clients send plain JSON, which is turned into Postgres text here the way
 * Neon's proxy does it.
 */
export function toPgParam(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return toPgArrayLiteral(value);
  return JSON.stringify(value);
}

function toPgArrayLiteral(items: unknown[]): string {
  const parts = items.map((item) => {
    if (item === null || item === undefined) return "NULL";
    if (Array.isArray(item)) return toPgArrayLiteral(item);
    if (typeof item === "boolean" || typeof item === "number") return String(item);
    const text = typeof item === "string" ? item : JSON.stringify(item);
    return `"${text.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
  });
  return `{${parts.join(",")}}`;
}
