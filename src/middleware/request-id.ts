import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** A client-supplied id is kept when it is short and printable, so traces can be joined up. */
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export const requestId = createMiddleware<AppEnv>(async (c, next) => {
  const incoming = c.req.header(REQUEST_ID_HEADER);
  const id = incoming && ACCEPTABLE_ID.test(incoming) ? incoming : crypto.randomUUID();
  c.set("requestId", id);
  c.header(REQUEST_ID_HEADER, id);
  await next();
});
