import type pg from "pg";
import type { Backend } from "./backends.ts";
import { DatabaseUnreachableError, isDatabaseError } from "./errors.ts";

/**
 * Every Neon HTTP request runs in what looks like a fresh session, as the role
 * its user maps to. Pooled backend sessions are therefore reset after each
 * request — an open or failed transaction rolled back, the session's identity
 * (SESSION AUTHORIZATION, ROLE) restored, every setting, cursor, prepared
 * statement, listener, advisory lock, temporary object and sequence state
 * gone — given Neon's output settings again, and checked: a session whose
 * session user is not what it was at login is never reused. A session that
 * fails its reset or breaks (connection lost, instance stopped) is discarded
 * and replaced; on PGlite, whose one session cannot be replaced, the instance
 * is reopened (`Backend.recover`).
 */
const OUTPUT_SETTINGS = [
  "SET DateStyle = 'ISO, MDY'",
  "SET IntervalStyle = 'postgres'",
  "SET bytea_output = 'hex'",
  "SET TimeZone = 'UTC'",
  "SET client_encoding = 'UTF8'",
];

/** Needs a superuser; login roles get it as a per-role default instead (tools/db/roles.ts). */
const ENGLISH_MESSAGES = "SET lc_messages = 'C'";

const RESET = [
  "ROLLBACK",
  "SET SESSION AUTHORIZATION DEFAULT",
  "RESET ROLE",
  "CLOSE ALL",
  "RESET ALL",
  "DEALLOCATE ALL",
  "UNLISTEN *",
  "SELECT pg_advisory_unlock_all()",
  "DISCARD PLANS",
  "DISCARD SEQUENCES",
  "DISCARD TEMP",
];

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const setRole = (role: string | null) => (role === null ? "RESET ROLE" : `SET ROLE ${quoteIdent(role)}`);

interface SessionState {
  /** The session user at login; the reset must find it unchanged. */
  sessionUser: string;
  superuser: boolean;
  /** The role the session currently runs as (null: its session user). */
  role: string | null;
  /** Set when node-postgres reports the connection broken (socket closed, backend terminated, instance stopped). */
  broken?: Error;
}

export interface Session {
  readonly client: pg.PoolClient;
  readonly role: string | null;
  /** The error that broke the connection, if any (then it must not be reused). */
  readonly broken: Error | undefined;
}

export class SessionManager {
  readonly #states = new WeakMap<pg.PoolClient, SessionState>();

  constructor(private readonly backend: Backend) {}

  /** A connection in a fresh Neon-like session running as `role`. */
  async acquire(role: string | null): Promise<Session> {
    const pool = this.backend.poolFor(role);
    let client = await this.#connect(pool);
    // A pooled session whose connection broke while it was idle (terminated, timed out) is replaced.
    for (let tries = 0; this.#states.get(client)?.broken && tries < 16; tries++) {
      await this.#discard(client, this.#states.get(client)?.broken as Error);
      client = await this.#connect(pool);
    }
    const state = this.#states.get(client);
    try {
      if (!state) {
        await this.#prepare(client, role);
      } else if (state.role !== role) {
        // Only on PGlite, where one session serves every role.
        await client.query(setRole(role));
        state.role = role;
      }
    } catch (error) {
      // PostgreSQL refused (e.g. a role that does not exist): the session is intact, reset it as usual.
      if (isDatabaseError(error) && this.#states.has(client)) await this.release(this.#session(client, role));
      else await this.#discard(client, error as Error);
      throw isDatabaseError(error) ? error : new DatabaseUnreachableError((error as Error).message);
    }
    return this.#session(client, role);
  }

  #session(client: pg.PoolClient, role: string | null): Session {
    const states = this.#states;
    return {
      client,
      role,
      get broken() {
        return states.get(client)?.broken;
      },
    };
  }

  /**
   * Resets the session and returns the connection to the pool; discards it
   * instead when it broke, when `brokenBy` says so, or when the reset fails.
   */
  async release(session: Session, brokenBy?: Error): Promise<void> {
    const { client } = session;
    const state = this.#states.get(client);
    const broken = brokenBy ?? state?.broken;
    if (!state || broken) {
      await this.#discard(client, broken ?? new Error("session without state"));
      return;
    }
    try {
      const results = (await client.query(this.#sessionSql(state, session.role, true))) as unknown as pg.QueryResult[];
      const last = results[results.length - 1];
      const sessionUser = String(Object.values(last.rows[0] ?? {})[0]);
      if (sessionUser !== state.sessionUser) {
        throw new Error(`the session user changed from ${state.sessionUser} to ${sessionUser}`);
      }
      state.role = session.role;
      client.release();
    } catch (error) {
      await this.#discard(client, error as Error);
    }
  }

  async #connect(pool: pg.Pool): Promise<pg.PoolClient> {
    try {
      return await pool.connect();
    } catch (error) {
      // A stopped embedded instance comes back from its folder; a server is retried by the next request.
      if (this.backend.kind === "embedded" && (await this.backend.recover())) {
        try {
          return await pool.connect();
        } catch {}
      }
      throw new DatabaseUnreachableError((error as Error).message);
    }
  }

  async #prepare(client: pg.PoolClient, role: string | null): Promise<void> {
    const state: SessionState = { sessionUser: "", superuser: false, role: null };
    // From now on a connection error is recorded, never an unhandled 'error' event.
    client.on("error", (error: Error) => {
      state.broken ??= error;
    });
    this.#states.set(client, state);
    const { rows } = await client.query({
      text: "SELECT session_user::text, current_setting('is_superuser')",
      rowMode: "array",
    });
    state.sessionUser = String(rows[0][0]);
    state.superuser = rows[0][1] === "on";
    await client.query(this.#sessionSql(state, role, false));
    state.role = role;
  }

  #sessionSql(state: SessionState, role: string | null, reset: boolean): string {
    const statements = [...(reset ? RESET : []), ...OUTPUT_SETTINGS];
    if (state.superuser) statements.push(ENGLISH_MESSAGES);
    if (role !== null) statements.push(setRole(role));
    if (reset) statements.push("SELECT session_user::text");
    return statements.join(";\n");
  }

  async #discard(client: pg.PoolClient, reason: Error): Promise<void> {
    this.#states.delete(client);
    // PGlite has one session for all its connections: a new connection would find the old session's
    // state, so replacing the session means reopening the instance — before the pool's only slot is
    // free again, so that no request gets the old one.
    if (this.backend.kind === "embedded") await this.backend.recover();
    client.release(reason);
  }
}
