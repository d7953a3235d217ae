/**
 * One JSON object per line, which Workers Logs and `wrangler tail` index.
 * Callers pass only what is safe to keep: never a secret, token or connection string.
 */
export type LogFields = Record<string, unknown>;

export const log = {
  info: (event: string, fields: LogFields = {}) => console.log(JSON.stringify({ level: "info", event, ...fields })),
  warn: (event: string, fields: LogFields = {}) => console.warn(JSON.stringify({ level: "warn", event, ...fields })),
  error: (event: string, fields: LogFields = {}) => console.error(JSON.stringify({ level: "error", event, ...fields })),
};
