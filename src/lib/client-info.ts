import { z } from "zod";
import { cleanText } from "../contract/ingestion";

/**
 * What the service keeps about the caller of a request, from its headers.
 * Headers are client input: a value goes into a typed column only once it is
 * known to fit (audit_logs.ip_address is inet), and free text is cut and
 * cleaned. CF-Connecting-IP is set by Cloudflare in production; in
 * `wrangler dev` and the tests anything can send it.
 */
export interface ClientInfo {
  /** A valid IPv4 or IPv6 address, or null. */
  ipAddress: string | null;
  userAgent: string | null;
}

const ipAddress = z.union([z.ipv4(), z.ipv6()]);

const MAX_USER_AGENT_CHARS = 512;

export function clientInfo(headers: Headers): ClientInfo {
  const ip = headers.get("cf-connecting-ip")?.trim() ?? "";
  const userAgent = headers.get("user-agent");
  return {
    ipAddress: ipAddress.safeParse(ip).success ? ip : null,
    userAgent: userAgent ? cleanText(userAgent.slice(0, MAX_USER_AGENT_CHARS)) : null,
  };
}
