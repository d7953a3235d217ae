import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../app-env";
import { ConfigError } from "../env";
import { describeDbError, describeFailure, findSqlState, isDatabaseUnavailable, sqlStateKind } from "./db-errors";
import { ApiError, type ErrorCode, type ErrorEnvelope } from "./errors";
import { log } from "./logger";

function envelope(c: Context<AppEnv>, error: ApiError): Response {
  const body: ErrorEnvelope = {
    error: {
      code: error.code,
      message: error.message,
      requestId: c.get("requestId") ?? "unknown",
      ...(error.details === undefined ? {} : { details: error.details }),
    },
  };
  const response = c.json(body, error.status);
  const retryAfter = error.retryAfterSeconds ?? (error.status === 503 ? 30 : undefined);
  if (retryAfter !== undefined) response.headers.set("Retry-After", String(retryAfter));
  return response;
}

const HTTP_STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
  503: "service_unavailable",
};

/** Our errors, then Hono's HTTPException, then anything else (logged, 500 without internals). */
export const onError: ErrorHandler<AppEnv> = (error, c) => {
  if (error instanceof ApiError) return envelope(c, error);
  if (error instanceof HTTPException) {
    const code = HTTP_STATUS_CODES[error.status] ?? (error.status >= 500 ? "internal_error" : "bad_request");
    return envelope(c, new ApiError(code, error.message || code.replace(/_/g, " ")));
  }
  if (isDatabaseUnavailable(error) || sqlStateKind(findSqlState(error)) === "transient") {
    log.error("database_unavailable", { requestId: c.get("requestId"), ...describeDbError(error) });
    return envelope(c, new ApiError("service_unavailable", "The database is unavailable; try again shortly."));
  }
  if (error instanceof ConfigError) {
    log.error("misconfigured", { requestId: c.get("requestId"), issues: error.issues });
    return envelope(c, new ApiError("misconfigured", "The service is misconfigured."));
  }
  // A database error's message quotes the statement's parameters (the request's data): log only its shape.
  log.error("unhandled_error", { requestId: c.get("requestId"), ...describeFailure(error) });
  return envelope(c, new ApiError("internal_error", "An unexpected error occurred."));
};

export const notFound: NotFoundHandler<AppEnv> = (c) =>
  envelope(c, new ApiError("not_found", `No route for ${c.req.method} ${c.req.path}.`));
