import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { authenticationFailed, GatewayRequestError } from "./errors.ts";

/**
 * A user the gateway accepts in `Neon-Connection-String`, and the PostgreSQL
 * role its requests run as. `role: null` runs as the backend's own connection
 * user (the superuser on PGlite): for tools and test set-up, never for the Worker.
 */
export interface GatewayUser {
  name: string;
  password: string;
  role: string | null;
}

/** The gateway's users by name. A Map, so that a name like `__proto__` is only ever a key. */
export type GatewayUsers = ReadonlyMap<string, GatewayUser>;

export function gatewayUsers(users: Iterable<GatewayUser>): GatewayUsers {
  const map = new Map<string, GatewayUser>();
  for (const user of users) {
    if (!user.name || !user.password) throw new Error("a gateway user needs a name and a password");
    map.set(user.name, user);
  }
  return map;
}

/** A password for a local credential: 144 random bits, URL-safe. */
export const generatePassword = () => randomBytes(18).toString("base64url");

/** `postgres://user:password@host:port/database` for a gateway user (host and port of the gateway). */
export function connectionString(user: GatewayUser, host: string, port: number, database = "anchorpipe"): string {
  return `postgres://${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@${host}:${port}/${database}`;
}

export interface ConnectionInfo {
  user: string;
  password: string;
  /** `application_name` from the connection string's query, if any: a label for request counts. */
  applicationName: string | null;
}

/** Reads `Neon-Connection-String` the way Neon's proxy does, with its error messages. */
export function parseConnectionString(value: string | undefined): ConnectionInfo {
  if (!value) throw new GatewayRequestError("missing connection string: the Neon-Connection-String header is required");
  let url: URL;
  try {
    url = new URL(value);
  } catch (error) {
    throw new GatewayRequestError(`invalid connection string: ${(error as Error).message}`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new GatewayRequestError("incorrect scheme");
  }
  const user = safeDecode(url.username);
  if (!user) throw new GatewayRequestError("missing username");
  const password = safeDecode(url.password);
  if (!password) throw new GatewayRequestError("missing authentication credentials: required password");
  return { user, password, applicationName: url.searchParams.get("application_name") };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new GatewayRequestError("invalid connection string: bad percent-encoding");
  }
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * The configured user for these credentials, or the error Neon gives (28P01).
 * An unknown user gets the same answer as a wrong password, and the comparison
 * takes the same time whether the password is right or wrong.
 */
export function authenticate(users: GatewayUsers, info: ConnectionInfo): GatewayUser {
  const user = users.get(info.user);
  const expected = digest(user?.password ?? "\0no such user\0");
  if (!timingSafeEqual(expected, digest(info.password)) || !user) throw authenticationFailed(info.user);
  return user;
}
