import type { Context } from "hono";
import type { AppEnv } from "../app-env";
import { requireDb, requireReadDb } from "../middleware/config";
import type { ServiceContext } from "../services/context";
import type { Caller } from "../services/tokens";

/** The service context of an API request; `read` uses the read replica when one is configured. */
export function serviceContext(c: Context<AppEnv>, mode: "read" | "write"): ServiceContext {
  return {
    db: mode === "read" ? requireReadDb(c) : requireDb(c),
    now: () => new Date(),
    requestId: c.get("requestId"),
    actorId: c.get("caller")?.userId ?? null,
  };
}

/** The authenticated caller; routes with an Access other than public/signed always have one. */
export function callerOf(c: Context<AppEnv>): Caller {
  const caller = c.get("caller");
  if (!caller) throw new Error("route without an authenticated caller");
  return caller;
}
