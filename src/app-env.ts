import type { Db } from "./db/client";
import type { Bindings, Config } from "./env";
import type { RepoRole } from "./services/permissions";
import type { Caller } from "./services/tokens";

/** The one Hono environment type of the Worker. */
export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    requestId: string;
    config: Config;
    /** Present when DATABASE_URL is configured; use `requireDb(c)` in handlers. */
    db: Db | undefined;
    /** The read replica when DATABASE_URL_READONLY is set, else the same client as `db`. */
    readDb: Db | undefined;
    /** The authenticated person, on routes that require one (src/api/access.ts). */
    caller?: Caller;
    /** The caller's role on the route's repository, on repository routes. */
    role?: RepoRole;
    /** The repository a request was authenticated for, once known (for the access log). */
    repoId?: string;
  };
}
