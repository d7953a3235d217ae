import { type SQL, sql } from "drizzle-orm";
import { strToU8, type Zippable, zipSync } from "fflate";
import type { ServiceContext } from "../context";
import { toCsv } from "./csv";

/**
 * Everything stored about one person (GDPR art. 15 and 20), table by table, as one JSON document and one CSV
 * per table in a ZIP. Secrets are left out (provider tokens, session token hashes), and so are rows about
 * other people: a row is exported when it is the person's own or names them as actor or subject.
 */

export const EXPORT_FORMAT = "anchorpipe-export/1";

/** Table → the select of that person's rows. */
const TABLES = {
  users: (user: SQL) => sql`select id, github_id, github_login, email, name, created_at, last_login_at,
    telemetry_opt_in, preferences, deleted_at, is_platform_admin from users where id = ${user}`,
  accounts: (user: SQL) => sql`select id, user_id, provider, provider_account_id, token_type, scope, expires_at
    from accounts where user_id = ${user}`,
  sessions: (user: SQL) =>
    sql`select id, user_id, expires, created_at, last_used_at from sessions where user_id = ${user}`,
  user_repo_roles: (user: SQL) => sql`select * from user_repo_roles where user_id = ${user}`,
  role_audit_logs: (user: SQL) =>
    sql`select * from role_audit_logs where actor_id = ${user} or target_user_id = ${user}`,
  audit_logs: (user: SQL) => sql`select * from audit_logs where actor_id = ${user}
    or (subject = 'user' and subject_id = ${user}::text)
    or (subject = 'dsr' and subject_id in (select id::text from data_subject_requests where user_id = ${user}))`,
  notifications: (user: SQL) => sql`select * from notifications where user_id = ${user}`,
  telemetry_events: (user: SQL) => sql`select * from telemetry_events where user_id = ${user}`,
  data_subject_requests: (user: SQL) => sql`select id, user_id, type, status, requested_at, due_at, processed_at,
    confirmation_sent_at, metadata from data_subject_requests where user_id = ${user}`,
  data_subject_request_events: (user: SQL) => sql`select * from data_subject_request_events
    where request_id in (select id from data_subject_requests where user_id = ${user})`,
} as const;

export type ExportTable = keyof typeof TABLES;
export const EXPORT_TABLES = Object.keys(TABLES) as ExportTable[];

export interface ExportDocument {
  format: typeof EXPORT_FORMAT;
  requestId: string;
  userId: string;
  generatedAt: string;
  tables: Record<ExportTable, Record<string, unknown>[]>;
}

/** One statement: every table's rows as a JSON array, ordered by id so two exports compare equal. */
export async function collectExport(ctx: ServiceContext, input: { userId: string; requestId: string }) {
  const user = sql`${input.userId}::uuid`;
  const parts = EXPORT_TABLES.map(
    (table) =>
      sql`${table}::text, (select coalesce(jsonb_agg(to_jsonb(x) order by x.id), '[]'::jsonb) from (${TABLES[table](user)}) x)`,
  );
  const result = await ctx.db.execute<{ tables: ExportDocument["tables"] }>(
    sql`select jsonb_build_object(${sql.join(parts, sql`, `)}) as tables`,
  );
  const document: ExportDocument = {
    format: EXPORT_FORMAT,
    requestId: input.requestId,
    userId: input.userId,
    generatedAt: ctx.now().toISOString(),
    tables: result.rows[0].tables,
  };
  return document;
}

/**
 * export.json and one CSV per table, plus a README naming what was left out, deflated. Built in one call:
 * the document is already in memory and the bucket needs the archive's length and SHA-256 up front.
 */
export function exportArchive(document: ExportDocument): Uint8Array<ArrayBuffer> {
  const readme =
    "Everything anchorpipe stores about you, as of generatedAt in export.json.\n" +
    "export.json holds every table; each CSV file holds one table's rows.\n" +
    "Left out: access and refresh tokens of linked accounts and the hashes of session tokens (secrets, not data about you).\n";
  const files: Zippable = {
    "README.txt": strToU8(readme),
    "export.json": strToU8(JSON.stringify(document, null, 2)),
  };
  for (const table of EXPORT_TABLES) files[`${table}.csv`] = strToU8(toCsv(document.tables[table]));
  // fflate writes the DOS timestamp in local time, which is UTC in a Worker.
  return zipSync(files, { mtime: document.generatedAt });
}
