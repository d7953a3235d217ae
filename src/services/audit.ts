import type { Db } from "../db/client";
import { auditLogs, type NewAuditLog } from "../db/schema";

/** One audit row. metadata never holds secrets, tokens or personal data beyond ids. */
export type AuditEntry = Omit<NewAuditLog, "id" | "createdAt">;

/** The insert, not executed, so callers can put it in their own batch. */
export function auditQuery(db: Db, entry: AuditEntry) {
  return db.insert(auditLogs).values(entry);
}
