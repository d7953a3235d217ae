import type { Db } from "../db/client";

/**
 * What every service function gets: the database, a clock and who is asking.
 * Services know nothing of HTTP; routes, scheduled jobs, Node tools and tests
 * build a context and call the same functions.
 */
export interface ServiceContext {
  db: Db;
  now: () => Date;
  /** For audit rows. */
  requestId?: string;
  /** The acting user, when there is one (null for CI uploads and jobs). */
  actorId?: string | null;
}
