/**
 * Neon answers every error it can explain with HTTP 400 and an object that
 * always carries these 17 keys; the driver copies them onto `NeonDbError`.
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

/** An error in the request itself (not from PostgreSQL), answered with `status`. */
export class GatewayRequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = "GatewayRequestError";
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
  }
  body.code ??= "";
  body.severity ??= "";
  return body;
}
