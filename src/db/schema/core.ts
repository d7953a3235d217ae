import { bigint, jsonb, pgEnum, pgTable, text, unique } from "drizzle-orm/pg-core";
import { createdAt, id, updatedAt } from "./columns";

export const repoVisibility = pgEnum("repo_visibility", ["public", "private"]);

export const repos = pgTable(
  "repos",
  {
    id: id(),
    ghId: bigint({ mode: "bigint" }).unique("repos_gh_id_unique"),
    name: text().notNull(),
    owner: text().notNull(),
    defaultBranch: text().notNull().default("main"),
    visibility: repoVisibility().notNull().default("public"),
    config: jsonb(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique("repos_owner_name_unique").on(t.owner, t.name)],
);

export type Repo = typeof repos.$inferSelect;
export type NewRepo = typeof repos.$inferInsert;
