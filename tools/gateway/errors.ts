/**
 * Neon answers every error it can explain with an object that always carries
 * these 17 keys; the driver copies them onto `NeonDbError` (for HTTP 400) or
 * reports `Server error (HTTP status N)` (anything else).
 */
const ERROR_KEYS = [
  "message",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "severity",
  "where",
  "table",
  "column",
  "schema",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

export type NeonErrorBody = Record<(typeof ERROR_KEYS)[number], string | null>;

/** An error answered by the gateway itself (not by PostgreSQL), with `status` and optionally a SQLSTATE. */
export class GatewayRequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly sqlState = "",
    readonly severity = "",
  ) {
    super(message);
    this.name = "GatewayRequestError";
  }
}

/** Neon's limits on request and response bodies (proxy `max_request_size_bytes`, `max_response_size_bytes`). */
export const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
export const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

/** Neon's proxy: `request is too large (max is N bytes)`, HTTP 413. */
export const requestTooLarge = () =>
  new GatewayRequestError(`request is too large (max is ${MAX_REQUEST_BYTES} bytes)`, 413);

/** Neon's proxy stops reading rows once its output passes the limit: HTTP 507. */
export const responseTooLarge = () =>
  new GatewayRequestError(`response is too large (max is ${MAX_RESPONSE_BYTES} bytes)`, 507);

/**
 * A wrong password or an unknown user. Neon's proxy says `password authentication failed for user '<name>'`
 * with HTTP 400 (a user error); PostgreSQL's SQLSTATE for it is 28P01, at FATAL severity.
 */
export const authenticationFailed = (user: string) =>
  new GatewayRequestError(`password authentication failed for user '${user}'`, 400, "28P01", "FATAL");

/**
 * The database cannot be reached (refused, restarting, connection lost before the query ran). Neon's proxy
 * answers a compute it cannot connect to with HTTP 500 "Couldn't connect to compute node"; the driver turns
 * any non-400 status into a `NeonDbError` without a SQLSTATE, which the Worker reports as 503.
 */
export class DatabaseUnreachableError extends GatewayRequestError {
  constructor(readonly reason: string) {
    super("Couldn't connect to compute node", 500);
    this.name = "DatabaseUnreachableError";
  }
}

/**
 * An error reported by PostgreSQL. Checked by shape, not class: node-postgres
 * and PGlite's adapter each bring their own `DatabaseError`.
 */
export function isDatabaseError(error: unknown): error is Error & Record<string, unknown> {
  return (
    error instanceof Error &&
    typeof (error as { code?: unknown }).code === "string" &&
    /^[0-9A-Z]{5}$/.test((error as unknown as { code: string }).code) &&
    typeof (error as { severity?: unknown }).severity === "string"
  );
}

export function errorBody(error: Error): NeonErrorBody {
  const body = Object.fromEntries(ERROR_KEYS.map((key) => [key, null])) as NeonErrorBody;
  body.message = error.message;
  if (isDatabaseError(error)) {
    for (const key of ERROR_KEYS) {
      if (key === "message") continue;
      const value = error[key];
      if (value !== undefined && value !== null) body[key] = String(value);
    }
  } else if (error instanceof GatewayRequestError) {
    body.code = error.sqlState;
    body.severity = error.severity;
  }
  body.code ??= "";
  body.severity ??= "";
  return body;
}
