import { index, integer, pgTable, text, unique, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, timestamptz } from "./columns";
import { users } from "./core";

/** Auth.js-style tables. Tokens are stored encrypted (provider tokens) or hashed (ours), never in clear. */
export const accounts = pgTable(
  "accounts",
  {
    id: id(),
    userId: uuid()
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    provider: text().notNull(),
    providerAccountId: text().notNull(),
    /** Encrypted at rest when present. */
    accessToken: text(),
    /** Encrypted at rest when present. */
    refreshToken: text(),
    tokenType: text(),
    scope: text(),
    expiresAt: integer(),
  },
  (t) => [
    unique("accounts_provider_account_unique").on(t.provider, t.providerAccountId),
    index("accounts_user_idx").on(t.userId),
  ],
);

export const sessions = pgTable(
  "sessions",
  {
    id: id(),
    userId: uuid()
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    /** SHA-256 of the bearer token; the token itself is never stored. */
    sessionToken: text().notNull().unique("sessions_session_token_unique"),
    expires: timestamptz().notNull(),
    createdAt: createdAt(),
    lastUsedAt: timestamptz(),
  },
  (t) => [index("sessions_user_idx").on(t.userId), index("sessions_expires_idx").on(t.expires)],
);

export const verificationTokens = pgTable(
  "verification_tokens",
  {
    id: id(),
    identifier: text().notNull(),
    /** Hashed. */
    token: text().notNull().unique("verification_tokens_token_unique"),
    expires: timestamptz().notNull(),
  },
  (t) => [unique("verification_tokens_identifier_token_unique").on(t.identifier, t.token)],
);

export type Account = typeof accounts.$inferSelect;
export type NewAccount = typeof accounts.$inferInsert;
export type Session = typeof sessions.$inferSelect;
export type NewSession = typeof sessions.$inferInsert;
export type VerificationToken = typeof verificationTokens.$inferSelect;
export type NewVerificationToken = typeof verificationTokens.$inferInsert;
