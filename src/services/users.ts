import { users } from "../db/schema";
import { findSqlState } from "../lib/db-errors";
import { auditQuery } from "./audit";
import type { ServiceContext } from "./context";

export class UserExistsError extends Error {
  override name = "UserExistsError";
}

/**
 * Creates a person (first set-up, `npm run user:create`, the dev demo admin).
 * The audit row names the new user by id only: no login or email in audit
 * metadata, so erasing a person never has to rewrite history.
 */
export async function createUser(
  ctx: ServiceContext,
  input: {
    login: string;
    name?: string | null;
    email?: string | null;
    isPlatformAdmin?: boolean;
    /** GitHub's numeric user id (decimal): links the person to the GitHub App's installations. */
    githubId?: string | null;
  },
): Promise<{ id: string; login: string; isPlatformAdmin: boolean }> {
  const id = crypto.randomUUID();
  try {
    await ctx.db.batch([
      ctx.db.insert(users).values({
        id,
        githubLogin: input.login,
        githubId: input.githubId ?? null,
        name: input.name ?? null,
        email: input.email ?? null,
        isPlatformAdmin: input.isPlatformAdmin ?? false,
        createdAt: ctx.now(),
      }),
      auditQuery(ctx.db, {
        actorId: ctx.actorId ?? null,
        action: "user_created",
        subject: "user",
        subjectId: id,
        description: "user created",
        metadata: { platformAdmin: input.isPlatformAdmin ?? false },
        requestId: ctx.requestId ?? null,
        createdAt: ctx.now(),
      }),
    ]);
  } catch (error) {
    if (findSqlState(error) === "23505") throw new UserExistsError("a user with that email or GitHub id exists");
    throw error;
  }
  return { id, login: input.login, isPlatformAdmin: input.isPlatformAdmin ?? false };
}
