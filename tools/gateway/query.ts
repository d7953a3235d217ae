import pg from "pg";
import { MAX_RESPONSE_BYTES, responseTooLarge } from "./errors.ts";

/**
 * One statement, read incrementally. The statement runs in a row-limited
 * portal (extended protocol: Parse, Bind, Describe, Execute with a row count,
 * Flush; PostgreSQL answers PortalSuspended after each page), so neither the
 * server nor PGlite ever hands over more than a page of rows at a time. Each
 * row is charged to the request's response budget as it arrives; once the
 * budget is spent the rows are no longer kept, the portal is closed at the end
 * of the current page (Sync) and the request is answered with Neon's 507.
 * That is what Neon's proxy does (it stops at 10 MiB of output rather than
 * buffering a whole result).
 */

/** Rows per Execute. Small enough that a page of wide rows stays small, large enough that 100 rows take one round trip. */
export const PAGE_ROWS = 1000;

/** What one request's answer may still take, shared by all statements of a batch. */
export class ResponseBudget {
  used = 0;
  constructor(readonly limit = MAX_RESPONSE_BYTES) {}
  /** Charges `bytes`; false once the answer would be too large. */
  charge(bytes: number): boolean {
    this.used += bytes;
    return this.used <= this.limit;
  }
  get exhausted(): boolean {
    return this.used > this.limit;
  }
}

export interface FieldInfo {
  name: string;
  tableID: number;
  columnID: number;
  dataTypeID: number;
  dataTypeSize: number;
  dataTypeModifier: number;
  format: string;
}

export interface StatementResult {
  fields: FieldInfo[];
  command: string;
  rowCount: number | null;
  /** PostgreSQL's text output, row by row. */
  rows: (string | null)[][];
}

/** The parts of node-postgres' Query this subclass overrides (not in its type declarations). */
interface QueryInternals {
  rows?: number;
  callback?: (error: Error | null, result?: unknown) => void;
  _result: {
    fields: pg.FieldDef[];
    command: string | null;
    rowCount: number | null;
    parseRow(raw: unknown[]): unknown;
  };
  _accumulateRows: boolean;
  handleRowDescription(msg: { fields: { name: string }[] }): void;
  handleDataRow(msg: { fields: unknown[] }): void;
  handlePortalSuspended(connection: Connection): void;
  handleCommandComplete(msg: unknown, connection: Connection): void;
  handleEmptyQuery(connection: Connection): void;
  handleError(error: Error, connection: Connection): void;
}
interface Connection {
  sync(): void;
}

const BaseQuery = pg.Query as unknown as new (config: object) => QueryInternals;

class PagedQuery extends BaseQuery {
  readonly kept: (string | null)[][] = [];
  #synced = false;
  /** JSON bytes a row takes beyond its values: `[…],`, commas, and the keys of object rows. */
  #rowOverhead = 0;

  constructor(
    text: string,
    values: (string | null)[],
    private readonly budget: ResponseBudget,
    private readonly objectMode: boolean,
  ) {
    // queryMode "extended": Parse/Bind/Execute even without parameters, so two statements in one
    // string fail with 42601 as they do on Neon, never the simple protocol.
    super({ text, values, rowMode: "array", queryMode: "extended", rows: PAGE_ROWS });
  }

  override handleRowDescription(msg: { fields: { name: string }[] }): void {
    const columns = msg.fields.length;
    this.#rowOverhead = columns + 2;
    if (this.objectMode) this.#rowOverhead += msg.fields.reduce((sum, f) => sum + f.name.length + 3, 0);
    super.handleRowDescription(msg);
    this._accumulateRows = false; // rows are kept here, as text, and only while the budget lasts
  }

  override handleDataRow(msg: { fields: unknown[] }): void {
    if (this.budget.exhausted) return;
    const row = msg.fields as (string | null)[];
    let bytes = this.#rowOverhead;
    for (const value of row) bytes += value === null ? 4 : value.length + 2;
    if (this.budget.charge(bytes)) this.kept.push(row);
  }

  override handlePortalSuspended(connection: Connection): void {
    if (this.budget.exhausted) {
      // Stop reading: Sync closes the portal (and ends the implicit transaction); ReadyForQuery follows.
      this.#synced = true;
      connection.sync();
      return;
    }
    super.handlePortalSuspended(connection);
  }

  // node-postgres sends Sync itself when a paged statement completes (or is empty).
  override handleCommandComplete(msg: unknown, connection: Connection): void {
    this.#synced = true;
    super.handleCommandComplete(msg, connection);
  }

  override handleEmptyQuery(connection: Connection): void {
    this.#synced = true;
    super.handleEmptyQuery(connection);
  }

  override handleError(error: Error, connection: Connection): void {
    // After an error PostgreSQL skips everything up to the next Sync. node-postgres sends none for a
    // paged statement, so without this the session would wait for ReadyForQuery forever. Exactly one
    // Sync per statement: a second would produce a ReadyForQuery the next statement takes for its own.
    if (!this.#synced) {
      this.#synced = true;
      try {
        connection.sync();
      } catch {
        // The connection is gone; the session is dropped anyway.
      }
    }
    super.handleError(error, connection);
  }
}

/**
 * Runs one statement on `client` and returns its result as text rows, or
 * throws Neon's 507 once `budget` is spent (the statement itself has run; in a
 * batch the caller rolls back).
 */
export async function runStatement(
  client: pg.ClientBase,
  text: string,
  values: (string | null)[],
  budget: ResponseBudget,
  objectMode: boolean,
): Promise<StatementResult> {
  const query = new PagedQuery(text, values, budget, objectMode);
  await new Promise<void>((resolve, reject) => {
    query.callback = (error) => (error ? reject(error) : resolve());
    client.query(query as unknown as pg.QueryConfig);
  });
  if (budget.exhausted) throw responseTooLarge();
  const result = query._result;
  return {
    fields: (result.fields ?? []).map((f) => ({
      name: f.name,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeID: f.dataTypeID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      // PGlite's adapter reports the format as 0; Neon and node-postgres say "text".
      format: (f.format as unknown) === 0 || f.format === "text" ? "text" : "binary",
    })),
    command: result.command ?? "",
    rowCount: result.rowCount ?? null,
    rows: query.kept,
  };
}
