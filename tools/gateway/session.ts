import type pg from "pg";

/**
 * Every Neon HTTP request runs in what looks like a fresh session. Pooled
 * connections are therefore reset after each request (an open or failed
 * transaction rolled back, every setting, prepared statement, cursor, listener,
 * advisory lock and temporary table gone) and given Neon's output settings
 * again, so that text output (dates, intervals, bytea) and error messages
 * look the same as Neon's.
 */
const OUTPUT_SETTINGS = [
  "SET DateStyle = 'ISO, MDY'",
  "SET IntervalStyle = 'postgres'",
  "SET bytea_output = 'hex'",
  "SET TimeZone = 'UTC'",
  "SET client_encoding = 'UTF8'",
];

/** `lc_messages` needs a superuser; on a server where we are not one, messages stay in the server's language. */
const ENGLISH_MESSAGES = "SET lc_messages = 'C'";

const RESET = [
  "ROLLBACK",
  "CLOSE ALL",
  "RESET ALL",
  "DEALLOCATE ALL",
  "UNLISTEN *",
  "SELECT pg_advisory_unlock_all()",
  "DISCARD PLANS",
  "DISCARD SEQUENCES",
  "DISCARD TEMP",
];

export class SessionManager {
  #canSetMessages: boolean | undefined;
  readonly #prepared = new WeakSet<pg.PoolClient>();

  constructor(private readonly pool: pg.Pool) {}

  /** A connection in a fresh Neon-like session. */
  async acquire(): Promise<pg.PoolClient> {
    const client = await this.pool.connect();
    if (!this.#prepared.has(client)) {
      try {
        await client.query(await this.#sessionSql(client, false));
      } catch (error) {
        client.release(error as Error);
        throw error;
      }
      this.#prepared.add(client);
    }
    return client;
  }

  /**
   * Resets the session and returns the connection to the pool. A connection
   * that failed for a reason other than a database error is dropped instead.
   */
  async release(client: pg.PoolClient, brokenBy?: Error): Promise<void> {
    if (brokenBy) {
      this.#prepared.delete(client);
      client.release(brokenBy);
      return;
    }
    try {
      await client.query(await this.#sessionSql(client, true));
      client.release();
    } catch (error) {
      this.#prepared.delete(client);
      client.release(error as Error);
    }
  }

  async #sessionSql(client: pg.PoolClient, reset: boolean): Promise<string> {
    if (this.#canSetMessages === undefined) {
      try {
        await client.query(ENGLISH_MESSAGES);
        this.#canSetMessages = true;
      } catch {
        this.#canSetMessages = false;
      }
    }
    const statements = [
      ...(reset ? RESET : []),
      ...OUTPUT_SETTINGS,
      ...(this.#canSetMessages ? [ENGLISH_MESSAGES] : []),
    ];
    return statements.join(";\n");
  }
}
