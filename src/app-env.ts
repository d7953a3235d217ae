import type { Db } from "./db/client";
import type { Bindings, Config } from "./env";

/** The one Hono environment type of the Worker. */
export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    requestId: string;
    config: Config;
    /** Present when DATABASE_URL is configured; use `requireDb(c)` in handlers. */
    db: Db | undefined;
    /** The repository a request was authenticated for, once known (for the access log). */
    repoId?: string;
  };
}
