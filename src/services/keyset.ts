import { type SQL, sql } from "drizzle-orm";

/**
 * A timestamp as a keyset cursor key, to the microsecond, in UTC. PostgreSQL keeps microseconds and a
 * JavaScript Date only milliseconds: a key rounded to the millisecond could skip rows between pages.
 */
export const cursorTime = (column: SQL) => sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
