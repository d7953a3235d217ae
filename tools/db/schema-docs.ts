import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { is, SQL } from "drizzle-orm";
import { toSnakeCase } from "drizzle-orm/casing";
import { getTableConfig, IndexedColumn, isPgEnum, type PgColumn, PgDialect, PgTable } from "drizzle-orm/pg-core";
import * as schema from "../../src/db/schema/index.ts";
import { isMain, parseToolArgs } from "./command.ts";

/**
 * Generates docs/database-schema.md from the Drizzle schema objects, so the
 * reference cannot drift from the code: `npm run db:docs` writes it,
 * `npm run db:docs -- --check` fails when the committed file is stale (and
 * test/node/schema-docs.test.ts does the same in the suite). What Drizzle
 * cannot describe (test_runs' partitioning, roles, triggers) lives in
 * hand-written migrations and is summarised by HAND_WRITTEN below; keep it in
 * step with drizzle/0002–0004.
 */

export const DOCS_PATH = path.resolve(import.meta.dirname, "../../docs/database-schema.md");

/** The tables by domain, in the order the document presents them, with one line each. */
const DOMAINS: { title: string; tables: Record<string, string> }[] = [
  {
    title: "Core",
    tables: {
      repos: "A repository whose test results are ingested; `gh_id` links it to GitHub.",
      users:
        "A person who signs in. A data subject deletion sets `deleted_at` and erases the personal fields; the row stays so history keeps its references.",
      test_cases: "A test, identified within its repository by path, name and framework.",
      ingestions:
        "One accepted upload. Its unique (repo_id, idempotency_key) detects a duplicate for as long as its runs are kept; `response` is what the client was told.",
      test_runs: "One execution of one test case; partitioned by month on `created_at`.",
      flake_scores: "The current flakiness score of a test case (1:1), with the factors that explain it.",
      owner_maps: "Who owns which paths of a repository (CODEOWNERS lines, manual entries, heuristics).",
      repository_configs: "Per-repository settings: retention, scoring threshold, signature requirements.",
      notifications:
        "Messages to the people of a repository; a null `user_id` addresses the whole repository. A null `repo_id` " +
        "is a platform-wide message to one person (`user_id`): a data subject request's deadline reminder to a platform admin.",
    },
  },
  {
    title: "Authentication",
    tables: {
      accounts:
        "A user's identity at an OAuth provider (Auth.js style); provider tokens are encrypted at rest when present.",
      sessions: "A signed-in session; `session_token` is the SHA-256 of the bearer token, never the token.",
      verification_tokens: "One-time sign-in tokens, stored hashed.",
    },
  },
  {
    title: "Access control",
    tables: {
      user_repo_roles: "A user's role in a repository.",
      role_audit_logs:
        "Append-only history of role changes. References are SET NULL so the history survives the people and repositories it mentions.",
    },
  },
  {
    title: "Security",
    tables: {
      audit_logs: "Append-only security audit trail. `metadata` never holds secrets.",
      hmac_secrets:
        "A repository's upload-signing secrets, AES-256-GCM-encrypted under a key-encryption key held as a Worker secret; the additional data binds repo_id and the secret's id.",
    },
  },
  {
    title: "Privacy",
    tables: {
      data_subject_requests: "GDPR/CCPA export and deletion requests, with their due date.",
      data_subject_request_events: "Append-only timeline of a data subject request.",
    },
  },
  {
    title: "GitHub",
    tables: {
      github_app_installations:
        "GitHub App installations. Repositories link to them through `repos.gh_id` ∈ `repository_ids` (no foreign key).",
    },
  },
  {
    title: "Telemetry",
    tables: {
      telemetry_events:
        "Product telemetry events; references are SET NULL, so events outlive the users and repositories they mention.",
    },
  },
];

/** Columns whose type in the database differs from the Drizzle declaration (set by a hand-written migration). */
const SQL_TYPE_OVERRIDES: Record<string, { type: string; note: string }> = {
  "test_runs.commit_sha": { type: "char(40)", note: "declared `text` in Drizzle; `char(40)` in drizzle/0002" },
};

/** Tables whose indexes and checks are only in the hand-written migration. */
const HAND_WRITTEN_CONSTRAINTS: Record<string, string> = {
  test_runs:
    "Secondary indexes and check constraints are created by drizzle/0002_test_runs_partitioned.sql; see [test_runs partitioning](#test_runs-partitioning).",
};

const HAND_WRITTEN = `## What the Drizzle schema does not show

These parts are written by hand in SQL migrations, because drizzle-kit cannot express them. This section is
maintained in \`tools/db/schema-docs.ts\`; keep it in step with the migrations it names.

### test_runs partitioning

Created by \`drizzle/0002_test_runs_partitioned.sql\` (decision: \`docs/adr/0001-partition-test-runs-by-created-at.md\`).

- \`test_runs\` is \`PARTITION BY RANGE (created_at)\`, one partition per calendar month named
  \`test_runs_pYYYY_MM\` (for example \`test_runs_p2026_03\` holds rows created in March 2026). \`created_at\` is
  assigned by the server, so a client's clock never decides where a row lands.
- The primary key is \`(id, created_at)\`: PostgreSQL requires the partition key in every unique constraint of a
  partitioned table. \`id\` alone is not declared unique.
- \`commit_sha\` is \`char(40)\` in the database (\`text\` in the Drizzle declaration).
- \`test_runs_default\` is the default partition. It catches rows whose month has no partition yet and should stay
  empty: rows in it mean partition upkeep fell behind, and the database health check reports them as unhealthy.
- \`anchorpipe_ensure_test_run_partitions(months_ahead integer DEFAULT 1, from_month date DEFAULT now()::date)\`
  creates the partitions from \`from_month\`'s month through \`months_ahead\` months later where missing, moves any
  rows of those months out of the default partition, and returns the names it created (running it again creates
  nothing). The migration calls it once (current and next month); the scheduled partition job calls it ahead of time.
- \`anchorpipe_drop_test_run_partitions_before(cutoff timestamptz)\` drops the monthly partitions that end on or
  before \`cutoff\` and returns their names: retention removes whole months, never row by row.
- Both functions are \`SECURITY DEFINER\` with a fixed \`search_path\`, executable only by \`anchorpipe_app\` and
  \`anchorpipe_migrator\`: partition upkeep is the only DDL the application can cause.

Indexes, created on the parent and so on every partition, present and future (all btree):

| Name | Columns |
| --- | --- |
| \`test_runs_test_case_started_idx\` | \`test_case_id, started_at DESC\` |
| \`test_runs_repo_started_idx\` | \`repo_id, started_at DESC\` |
| \`test_runs_repo_commit_idx\` | \`repo_id, commit_sha\` |
| \`test_runs_environment_hash_idx\` | \`environment_hash\` |
| \`test_runs_ingestion_idx\` | \`ingestion_id\` (migration 0005: keeps the cascade from a deleted ingestion or repo fast) |

Check constraints:

| Name | Condition |
| --- | --- |
| \`test_runs_commit_sha_format\` | \`commit_sha ~ '^[0-9a-f]{40}$'\` (lowercase hex, 40 characters) |
| \`test_runs_duration_nonnegative\` | \`duration_ms IS NULL OR duration_ms >= 0\` |
| \`test_runs_rerun_count_nonnegative\` | \`rerun_count >= 0\` |

### Roles

Created by \`drizzle/0003_roles_and_grants.sql\`. Three group roles without login rights of their own
(\`NOLOGIN\`); grant them to real login roles. Roles belong to the whole server, so the migration creates them
only when missing and its down script never drops them.

| Role | Rights |
| --- | --- |
| \`anchorpipe_migrator\` | Owns the schema: \`USAGE, CREATE\` on schema \`public\`, \`ALL\` on every table; runs the migrations (DDL). |
| \`anchorpipe_app\` | What the Worker runs as: \`SELECT, INSERT, UPDATE, DELETE\` on application tables, but only \`SELECT, INSERT\` on the append-only tables; no DDL; \`EXECUTE\` on the partition functions, \`anchorpipe_purge_append_only\` and \`anchorpipe_erase_user\`. |
| \`anchorpipe_readonly\` | \`SELECT\` on every application table. |

Neither \`anchorpipe_app\` nor \`anchorpipe_readonly\` has any right on \`anchorpipe_migrations\`. Default
privileges give tables created later by the role that ran the migrations (the monthly partitions among them)
the same rights.

### Append-only tables

Created by \`drizzle/0004_append_only_triggers.sql\`. \`audit_logs\`, \`role_audit_logs\` and
\`data_subject_request_events\` reject \`UPDATE\`, \`DELETE\` and \`TRUNCATE\` from everyone, the owner included
(triggers \`*_append_only\` and \`*_no_truncate\` calling \`anchorpipe_reject_append_only_change()\`). Only four
things may still change them:

- \`ON DELETE SET NULL\` from a deleted user or repository: the row stays, with a null reference, and nothing else
  in it may change;
- \`ON DELETE CASCADE\` from a deleted data subject request (its timeline goes with it);
- retention, through \`anchorpipe_purge_append_only(target regclass, before timestamptz)\`, which deletes the rows
  of one of these three tables created before \`before\` and returns how many it deleted. It is
  \`SECURITY DEFINER\`, refuses any other table, and is executable only by \`anchorpipe_app\` and
  \`anchorpipe_migrator\`;
- the erasure of a data subject, through \`anchorpipe_erase_user(erased_id uuid, pseudonym text)\`
  (\`drizzle/0013_privacy_erasure.sql\`, its column list amended by \`0014_erasure_skips_secrets.sql\`), which
  rewrites the person's email, login, name and ids to the pseudonym in these tables too. It sets the
  transaction-local flag \`anchorpipe.erasure\`, under which the trigger accepts \`UPDATE\` (never \`DELETE\`);
  it is \`SECURITY DEFINER\`, executable only by \`anchorpipe_app\` and \`anchorpipe_migrator\`, and
  \`anchorpipe_app\` has no \`UPDATE\` right on these tables with which to set the flag itself
  ([docs/privacy.md](privacy.md#erasure)).

### Migration bookkeeping

\`anchorpipe_migrations\` (tag, sha256 hash of the up script, applied_at) is created and maintained by
\`tools/db/migrator.ts\`, not by a migration. Each migration runs in one transaction with its bookkeeping row; a
changed migration (hash mismatch) stops the migrator.
`;

const dialect = new PgDialect({ casing: "snake_case" });

/** Everything src/db/schema exports: tables, enums, and nothing else that matters here. */
const exported: unknown[] = Object.values(schema);

type TableConfig = ReturnType<typeof getTableConfig>;

/** The SQL name of a column, as drizzle-kit derives it with `casing: "snake_case"`. */
function columnName(column: { name?: string; keyAsName?: boolean }): string {
  const name = column.name ?? "";
  return column.keyAsName ? toSnakeCase(name) : name;
}

function literal(value: unknown): string {
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value instanceof Date) return `'${value.toISOString()}'`;
  return `'${JSON.stringify(value).replaceAll("'", "''")}'`;
}

/** SQL text of a drizzle `sql` fragment, with parameters inlined and unneeded identifier quotes dropped. */
function renderSql(fragment: SQL): string {
  const { sql: text, params } = dialect.sqlToQuery(fragment, "indexes");
  const inlined = text.replace(/\$(\d+)/g, (match, n: string) =>
    Number(n) <= params.length ? literal(params[Number(n) - 1]) : match,
  );
  // Outside string literals, "simple_name" → simple_name.
  return inlined
    .split(/('(?:[^']|'')*')/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/"([a-z_][a-z0-9_]*)"/g, "$1")))
    .join("");
}

function renderDefault(column: PgColumn): string {
  if (!column.hasDefault) return "";
  let text: string;
  if (column.default !== undefined) {
    text = is(column.default, SQL) ? renderSql(column.default) : literal(column.default);
  } else if (column.defaultFn) {
    text = "(set by the application)";
  } else {
    return "";
  }
  return column.onUpdateFn ? `${text}; set on update by the application` : text;
}

function sqlType(table: string, column: PgColumn): string {
  return SQL_TYPE_OVERRIDES[`${table}.${columnName(column)}`]?.type ?? column.getSQLType();
}

const code = (text: string) => `\`${text.replaceAll("|", "\\|")}\``;
const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;

interface ForeignKeyInfo {
  name: string;
  columns: string[];
  foreignTable: string;
  foreignColumns: string[];
  onDelete: string;
}

function foreignKeys(config: TableConfig): ForeignKeyInfo[] {
  return config.foreignKeys.map((fk) => {
    const ref = fk.reference();
    const columns = ref.columns.map(columnName);
    const foreignTable = getTableConfig(ref.foreignTable).name;
    const foreignColumns = ref.foreignColumns.map(columnName);
    return {
      // drizzle-kit's naming (the names in the migrations) when none is given.
      name: ref.name ?? `${config.name}_${columns.join("_")}_${foreignTable}_${foreignColumns.join("_")}_fk`,
      columns,
      foreignTable,
      foreignColumns,
      onDelete: (fk.onDelete ?? "no action").toUpperCase(),
    };
  });
}

function primaryKey(config: TableConfig): { name: string; columns: string[] } | null {
  const inline = config.columns.filter((c) => c.primary).map(columnName);
  if (inline.length > 0) return { name: `${config.name}_pkey`, columns: inline };
  const [pk] = config.primaryKeys;
  if (!pk) return null;
  return { name: pk.name ?? pk.getName(), columns: pk.columns.map(columnName) };
}

function uniqueConstraints(config: TableConfig): { name: string; columns: string[] }[] {
  const inline = config.columns
    .filter((c) => c.isUnique)
    .map((c) => ({ name: c.uniqueName ?? `${config.name}_${columnName(c)}_unique`, columns: [columnName(c)] }));
  const declared = config.uniqueConstraints.map((u) => ({
    name: u.name ?? `${config.name}_${u.columns.map(columnName).join("_")}_unique`,
    columns: u.columns.map(columnName),
  }));
  return [...inline, ...declared];
}

function renderIndexColumn(column: unknown): string {
  if (is(column, SQL)) return renderSql(column);
  if (is(column, IndexedColumn)) {
    const { order, opClass } = column.indexConfig;
    return [columnName(column), opClass, order === "desc" ? "DESC" : undefined].filter(Boolean).join(" ");
  }
  return String(column);
}

function renderTable(table: PgTable, description: string | undefined): string {
  const config = getTableConfig(table);
  const fks = foreignKeys(config);
  const out: string[] = [`### ${config.name}`, ""];
  if (description) out.push(description, "");

  out.push(row(["Column", "Type", "Null", "Default", "References"]), row(["---", "---", "---", "---", "---"]));
  for (const column of config.columns) {
    const name = columnName(column);
    const fk = fks.find((f) => f.columns.length === 1 && f.columns[0] === name);
    const override = SQL_TYPE_OVERRIDES[`${config.name}.${name}`];
    const defaultText = renderDefault(column);
    out.push(
      row([
        code(name),
        code(sqlType(config.name, column)) + (override ? ` (${override.note})` : ""),
        column.notNull ? "no" : "yes",
        defaultText ? cell(defaultText.startsWith("(") ? defaultText : code(defaultText)) : "",
        fk ? `${fk.foreignTable}.${fk.foreignColumns.join(", ")}, ON DELETE ${fk.onDelete}` : "",
      ]),
    );
  }
  out.push("");

  const pk = primaryKey(config);
  if (pk) out.push(`**Primary key:** ${code(pk.name)} (${pk.columns.map(code).join(", ")})`, "");

  const uniques = uniqueConstraints(config);
  if (uniques.length > 0) {
    out.push("**Unique constraints:**", "");
    for (const u of uniques) out.push(`- ${code(u.name)} (${u.columns.map(code).join(", ")})`);
    out.push("");
  }

  const multiColumnFks = fks.filter((f) => f.columns.length > 1);
  if (multiColumnFks.length > 0) {
    out.push("**Composite foreign keys:**", "");
    for (const f of multiColumnFks) {
      out.push(
        `- ${code(f.name)} (${f.columns.join(", ")}) → ${f.foreignTable} (${f.foreignColumns.join(", ")}), ON DELETE ${f.onDelete}`,
      );
    }
    out.push("");
  }

  if (config.checks.length > 0) {
    out.push("**Check constraints:**", "");
    for (const check of config.checks) out.push(`- ${code(check.name)}: ${code(renderSql(check.value))}`);
    out.push("");
  }

  if (config.indexes.length > 0) {
    out.push(
      "**Indexes:**",
      "",
      row(["Name", "Method", "Columns", "Unique", "Where"]),
      row(["---", "---", "---", "---", "---"]),
    );
    for (const index of config.indexes) {
      const { name, method, unique, where, columns } = index.config;
      out.push(
        row([
          code(name ?? "(unnamed)"),
          method ?? "btree",
          code(columns.map(renderIndexColumn).join(", ")),
          unique ? "yes" : "",
          where ? code(renderSql(where)) : "",
        ]),
      );
    }
    out.push("");
  }

  const handWritten = HAND_WRITTEN_CONSTRAINTS[config.name];
  if (handWritten) out.push(handWritten, "");
  return out.join("\n");
}

/** Mermaid attribute types must be single words. */
function mermaidType(type: string): string {
  return type
    .replace("timestamp with time zone", "timestamptz")
    .replace(/\s+/g, "_")
    .replace(/[^A-Za-z0-9_[\]()-]/g, "");
}

function renderErDiagram(tables: PgTable[]): string {
  const entities: string[] = [];
  const relations: string[] = [];
  for (const table of tables) {
    const config = getTableConfig(table);
    const fks = foreignKeys(config);
    const pk = new Set(primaryKey(config)?.columns ?? []);
    const fkColumns = new Set(fks.flatMap((f) => f.columns));
    const uniqueColumns = new Set(
      uniqueConstraints(config)
        .filter((u) => u.columns.length === 1)
        .map((u) => u.columns[0]),
    );
    const lines: string[] = [];
    for (const column of config.columns) {
      const name = columnName(column);
      const keys = [pk.has(name) && "PK", fkColumns.has(name) && "FK", uniqueColumns.has(name) && "UK"].filter(
        (k): k is string => typeof k === "string",
      );
      if (keys.length === 0) continue;
      lines.push(`    ${mermaidType(sqlType(config.name, column))} ${name} ${keys.join(", ")}`);
    }
    entities.push(`  ${config.name} {`, ...lines, "  }");

    for (const fk of fks) {
      const fkCols = config.columns.filter((c) => fk.columns.includes(columnName(c)));
      const optional = fkCols.some((c) => !c.notNull);
      const oneToOne = uniqueConstraints(config).some(
        (u) => u.columns.length === fk.columns.length && u.columns.every((c) => fk.columns.includes(c)),
      );
      const parentSide = optional ? "|o" : "||";
      const childSide = oneToOne ? "o|" : "o{";
      relations.push(`  ${fk.foreignTable} ${parentSide}--${childSide} ${config.name} : "${fk.columns.join(", ")}"`);
    }
  }
  return ["```mermaid", "erDiagram", ...relations, ...entities, "```"].join("\n");
}

/** Every table of the schema, ordered by domain (tables missing from DOMAINS go last, under "Other"). */
function orderedTables(): { title: string; tables: { table: PgTable; description?: string }[] }[] {
  const all = new Map<string, PgTable>();
  for (const value of exported) {
    if (is(value, PgTable)) all.set(getTableConfig(value).name, value);
  }
  const groups: { title: string; tables: { table: PgTable; description?: string }[] }[] = [];
  const placed = new Set<string>();
  for (const domain of DOMAINS) {
    const tables = Object.entries(domain.tables).flatMap(([name, description]) => {
      const table = all.get(name);
      if (!table) return [];
      placed.add(name);
      return [{ table, description }];
    });
    if (tables.length > 0) groups.push({ title: domain.title, tables });
  }
  const rest = [...all.keys()]
    .filter((name) => !placed.has(name))
    .sort()
    .map((name) => ({ table: all.get(name)! }));
  if (rest.length > 0) groups.push({ title: "Other", tables: rest });
  return groups;
}

function renderEnums(tables: PgTable[]): string {
  const enums = exported.filter(isPgEnum).sort((a, b) => a.enumName.localeCompare(b.enumName));
  const usedBy = new Map<string, string[]>();
  for (const table of tables) {
    const config = getTableConfig(table);
    for (const column of config.columns) {
      const type = column.getSQLType();
      usedBy.set(type, [...(usedBy.get(type) ?? []), `${config.name}.${columnName(column)}`]);
    }
  }
  const out = [row(["Enum", "Values", "Used by"]), row(["---", "---", "---"])];
  for (const e of enums) {
    out.push(
      row([code(e.enumName), e.enumValues.map(code).join(", "), (usedBy.get(e.enumName) ?? []).map(code).join(", ")]),
    );
  }
  return out.join("\n");
}

export function renderSchemaDocs(): string {
  const groups = orderedTables();
  const tables = groups.flatMap((g) => g.tables.map((t) => t.table));
  const out: string[] = [
    "<!-- Generated by `npm run db:docs` (tools/db/schema-docs.ts) from the Drizzle schema. Do not edit by hand. -->",
    "",
    "# Database schema",
    "",
    "> Generated by `npm run db:docs` from the Drizzle schema in `src/db/schema/`; do not edit by hand. Change the",
    "> schema (or `tools/db/schema-docs.ts`) and run `npm run db:docs`; a test fails when this file is stale.",
    "",
    "PostgreSQL (Neon in production). SQL names are snake_case; the Drizzle declarations use the camelCase",
    "form of the same names. Timestamps are `timestamptz`; most tables have a `uuid` primary key generated by",
    "`gen_random_uuid()`. Tables and columns come from `drizzle-kit generate`; partitioning, roles, grants and",
    "triggers come from hand-written migrations, summarised under",
    "[What the Drizzle schema does not show](#what-the-drizzle-schema-does-not-show).",
    "",
    "## Contents",
    "",
  ];
  for (const group of groups) {
    const names = group.tables.map(({ table }) => getTableConfig(table).name);
    out.push(`- ${group.title}: ${names.map((n) => `[${n}](#${n})`).join(", ")}`);
  }
  out.push(
    "- [Enums](#enums), [Entity-relationship diagram](#entity-relationship-diagram)",
    "- [What the Drizzle schema does not show](#what-the-drizzle-schema-does-not-show): test_runs partitioning, roles, append-only tables",
    "",
    "## Entity-relationship diagram",
    "",
    "Key columns only (PK, FK, UK); the sections below list every column. `||--o{` is one-to-many with a",
    "required reference, `|o--o{` one-to-many with a nullable one, `||--o|` one-to-one.",
    "",
    renderErDiagram(tables),
    "",
    "## Enums",
    "",
    renderEnums(tables),
    "",
  );
  for (const group of groups) {
    out.push(`## ${group.title}`, "");
    for (const { table, description } of group.tables) out.push(renderTable(table, description));
  }
  out.push(HAND_WRITTEN);
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

function program(): Command {
  return new Command("npm run db:docs --")
    .description(`writes ${path.relative(process.cwd(), DOCS_PATH)} from the Drizzle schema`)
    .option("--check", "write nothing; fail when the committed file is out of date");
}

/** `{ check }` from a command line, or the exit code when there is nothing to run (help, usage error). */
export function parseSchemaDocsArgs(argv: string[]): { check: boolean } | number {
  const parsed = parseToolArgs(program(), argv);
  return typeof parsed === "number" ? parsed : { check: parsed.opts<{ check?: boolean }>().check === true };
}

function main(argv: string[]): number {
  const options = parseSchemaDocsArgs(argv);
  if (typeof options === "number") return options;
  const rendered = renderSchemaDocs();
  const relative = path.relative(process.cwd(), DOCS_PATH);
  if (options.check) {
    let current: string | null = null;
    try {
      current = readFileSync(DOCS_PATH, "utf8");
    } catch {
      // missing: reported below
    }
    if (current !== rendered) {
      console.error(`${relative} is out of date with the Drizzle schema: run \`npm run db:docs\` and commit it.`);
      return 1;
    }
    console.log(`${relative} is up to date.`);
    return 0;
  }
  writeFileSync(DOCS_PATH, rendered);
  console.log(`wrote ${relative}`);
  return 0;
}

if (isMain(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
