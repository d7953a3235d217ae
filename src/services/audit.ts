import type { Db } from "../db/client";
import { auditLogs, type NewAuditLog } from "../db/schema";

/**
 * One audit row. metadata never holds secrets, tokens or personal data beyond
 * ids. createdAt defaults to the database's now(); a service passes its
 * context's clock so its rows agree with the rows it writes alongside.
 */
export type AuditEntry = Omit<NewAuditLog, "id">;

/** The insert, not executed, so callers can put it in their own batch. */
export function auditQuery(db: Db, entry: AuditEntry) {
  return db.insert(auditLogs).values(entry);
}
