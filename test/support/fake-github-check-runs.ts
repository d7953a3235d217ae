/**
 * The checks API's validation of a create (POST) or update (PATCH) body, as far as GitHub documents it:
 * the problems as GitHub lists them in a 422, or null when the body is acceptable.
 */
const STATUSES = ["queued", "in_progress", "completed", "waiting", "requested", "pending"];
const CONCLUSIONS = ["action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"];
const MAX_TEXT = 65_535;

type Problem = { resource: "CheckRun"; field: string; code: "missing_field" | "invalid" | "too_long" };

export function validateCheckRun(body: unknown, creating: boolean): Problem[] | null {
  const problems: Problem[] = [];
  const problem = (field: string, code: Problem["code"]) => problems.push({ resource: "CheckRun", field, code });
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return [{ resource: "CheckRun", field: "body", code: "invalid" }];
  const input = body as Record<string, unknown>;

  if (creating || "name" in input) {
    if (typeof input.name !== "string" || input.name.length === 0) problem("name", "missing_field");
  }
  if (creating && (typeof input.head_sha !== "string" || !/^[0-9a-f]{40}$/.test(input.head_sha))) {
    problem("head_sha", "invalid");
  }
  if (input.status !== undefined && !STATUSES.includes(input.status as string)) problem("status", "invalid");
  if (input.conclusion !== undefined && !CONCLUSIONS.includes(input.conclusion as string))
    problem("conclusion", "invalid");
  if (creating && input.status === "completed" && input.conclusion === undefined)
    problem("conclusion", "missing_field");
  if (input.external_id !== undefined && typeof input.external_id !== "string") problem("external_id", "invalid");

  if (input.output !== undefined) {
    const output = input.output as Record<string, unknown> | null;
    if (typeof output !== "object" || output === null) {
      problem("output", "invalid");
    } else {
      for (const field of ["title", "summary"] as const) {
        if (typeof output[field] !== "string") problem(`output.${field}`, "missing_field");
      }
      for (const field of ["title", "summary", "text"] as const) {
        const value = output[field];
        if (value !== undefined && typeof value !== "string") problem(`output.${field}`, "invalid");
        if (typeof value === "string" && value.length > MAX_TEXT) problem(`output.${field}`, "too_long");
      }
    }
  }
  return problems.length ? problems : null;
}
