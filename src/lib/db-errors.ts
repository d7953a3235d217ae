/**
 * Telling "PostgreSQL said no" from "we could not reach PostgreSQL". Errors
 * come wrapped (drizzle's DrizzleQueryError around the driver's NeonDbError),
 * so the cause chain is searched.
 */

/** The SQLSTATE of a database error anywhere in the cause chain. */
export function findSqlState(error: unknown): string | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** A failure to reach the database at all (network, Neon proxy 5xx), as opposed to a SQL error. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (findSqlState(error)) return false;
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e.name === "NeonDbError") return true;
  }
  return false;
}
