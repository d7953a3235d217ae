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

/**
 * What a SQLSTATE says about retrying. "data": the statement's values were
 * refused (22 data exception, 23 integrity, 54 program limit such as an index
 * row too large): the same request will fail the same way. "transient": the
 * connection, the server's resources or a conflict (08, 40, 53, 57, 58): a
 * retry may succeed. Anything else is a bug of ours.
 */
export function sqlStateKind(state: string | undefined): "data" | "transient" | "other" {
  const category = state?.slice(0, 2);
  if (category === "22" || category === "23" || category === "54") return "data";
  if (category === "08" || category === "40" || category === "53" || category === "57" || category === "58") {
    return "transient";
  }
  return "other";
}

/**
 * A database error as it may be logged: the SQLSTATE, the constraint and
 * table it names, and the first line of the statement. Never the message's
 * parameters or detail, which quote the values (test names, failure output,
 * addresses) of the request.
 */
export function describeDbError(error: unknown): Record<string, string> {
  const described: Record<string, string> = {};
  for (let e = error; e instanceof Error; e = e.cause) {
    const fields = e as { code?: unknown; constraint?: unknown; table?: unknown; query?: unknown };
    described.name ??= e.name;
    if (typeof fields.code === "string" && /^[0-9A-Z]{5}$/.test(fields.code)) described.sqlState ??= fields.code;
    if (typeof fields.constraint === "string") described.constraint ??= fields.constraint;
    if (typeof fields.table === "string") described.table ??= fields.table;
    if (typeof fields.query === "string") {
      described.statement ??= fields.query.trimStart().split("\n", 1)[0].slice(0, 200);
    }
  }
  return described;
}

/**
 * Any error as it may be logged: a database error by its shape only (describeDbError), anything else by
 * its name and the first line of its message, which our own code wrote.
 */
export function describeFailure(error: unknown): Record<string, string> {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (typeof (e as { query?: unknown }).query === "string") return describeDbError(error);
  }
  if (findSqlState(error)) return describeDbError(error);
  if (!(error instanceof Error)) return { name: typeof error };
  return { name: error.name, message: error.message.split("\n", 1)[0].slice(0, 200) };
}

/** A failure as one line (job ledger, dead-letter records): its name and message, or a database error's SQLSTATE and statement. */
export function failureText(failure: Record<string, string>): string {
  const { name = "Error", message, statement, ...rest } = failure;
  const details = Object.entries(rest)
    .map(([key, value]) => `${key} ${value}`)
    .join(", ");
  return `${name}${details ? ` (${details})` : ""}${message || statement ? `: ${message ?? statement}` : ""}`;
}
