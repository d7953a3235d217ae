import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Backend } from "../gateway/backends.ts";
import { connectionString, type GatewayUser, generatePassword } from "../gateway/credentials.ts";
import { createGateway, type Gateway, type RequestLogEntry } from "../gateway/handler.ts";
import { listen, type RunningGateway } from "../gateway/server.ts";
import { devDataRoot } from "./connection.ts";
import { ROLE_KEYS, ROLES, type RoleKey } from "./roles.ts";

/**
 * The gateway of a local stack (npm run dev, tests, benchmarks): one user per
 * role, named like the role and running as it, each with its own password.
 * The Worker gets `anchorpipe_app`'s URL — the role it has in production.
 */
export type RolePasswords = Record<RoleKey, string>;

export const newRolePasswords = (): RolePasswords =>
  Object.fromEntries(ROLE_KEYS.map((key) => [key, generatePassword()])) as RolePasswords;

export const roleUsers = (passwords: RolePasswords): GatewayUser[] =>
  ROLE_KEYS.map((key) => ({ name: ROLES[key], password: passwords[key], role: ROLES[key] }));

export interface LocalGateway {
  gateway: Gateway;
  running: RunningGateway;
  /** `postgres://anchorpipe_<role>:<password>@127.0.0.1:<port>/anchorpipe` for each role. */
  urls: Record<RoleKey, string>;
}

export async function serveLocalGateway(
  backend: Backend,
  options: { passwords?: RolePasswords; port?: number; log?: (entry: RequestLogEntry) => void } = {},
): Promise<LocalGateway> {
  const users = roleUsers(options.passwords ?? newRolePasswords());
  const gateway = createGateway({ backend, users, log: options.log });
  const running = await listen(gateway, options.port ?? 0);
  const urls = Object.fromEntries(
    ROLE_KEYS.map((key, i) => [key, connectionString(users[i], "127.0.0.1", running.port)]),
  ) as Record<RoleKey, string>;
  return { gateway, running, urls };
}

/** The dev gateway's passwords (`npm run dev`, `npm run gateway`), made on first use and kept with the dev data (mode 600). */
export function loadDevRolePasswords(file = path.join(devDataRoot(), "gateway-users.json")): RolePasswords {
  const read = (): RolePasswords | null => {
    try {
      const stored = JSON.parse(readFileSync(file, "utf8")) as Partial<RolePasswords>;
      return ROLE_KEYS.every((key) => typeof stored[key] === "string" && stored[key])
        ? (stored as RolePasswords)
        : null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new Error(`${file} is not readable (${(error as Error).message}); delete it to make new passwords`);
    }
  };
  const existing = read();
  if (existing) return existing;
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(newRolePasswords(), null, 2)}\n`, { mode: 0o600 });
  return read() as RolePasswords;
}
