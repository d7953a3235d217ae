/**
 * Every body is checked with the contract's own payload schema before anything is sent: the same zod
 * schema the Worker validates with, so a payload the service would refuse with 400 fails here, naming the
 * field and the file it came from, and nothing goes out.
 */
import { type IssueDetail, issueDetails, payloadSchema } from "../../src/contract/ingestion.ts";
import { UploadError } from "./errors.ts";

/** Where an entry of `tests` or `reports` came from. */
export interface ItemOrigin {
  source: string;
  /** Position in its file's array; absent for a whole XML file. */
  index?: number;
}

/** Where a top-level value comes from, for the hint after the message. */
const SET_BY: Record<string, string> = {
  repo_id: "--repo-id / ANCHORPIPE_REPO_ID",
  commit_sha: "--commit or the CI's commit variable",
  run_id: "--run-id or the CI's run variables",
  branch: "--branch or the CI's branch variable",
  pull_request: "--pull-request or the CI's variables",
  framework: "--framework",
};

const SHOWN = 10;

function describe(issue: IssueDetail, origins: ItemOrigin[]): string {
  const [list, position, ...rest] = issue.path.split(".");
  const origin =
    (list === "tests" || list === "reports") && position !== undefined ? origins[Number(position)] : undefined;
  if (origin) {
    const entry = list === "tests" ? "test result" : "report";
    const where = origin.index === undefined ? origin.source : `${origin.source}: ${entry} ${origin.index}`;
    return `${where}: ${rest.length > 0 ? `${rest.join(".")}: ` : ""}${issue.message}`;
  }
  const hint = list && SET_BY[list] ? ` (${SET_BY[list]})` : "";
  return `${issue.path}: ${issue.message}${hint}`;
}

/**
 * Throws UploadError naming every field the contract refuses (the first ten). `origins` are the entries
 * of the body's `tests` or `reports`, in order.
 */
export function checkPayload(payload: unknown, origins: ItemOrigin[], label: string): void {
  const result = payloadSchema.safeParse(payload);
  if (result.success) return;
  const lines = issueDetails(result.error)
    .slice(0, SHOWN)
    .map((issue) => `  ${describe(issue, origins)}`);
  const total = result.error.issues.length;
  if (total > SHOWN) lines.push(`  … and ${total - SHOWN} more`);
  const sources = [...new Set(origins.map((origin) => origin.source))].join(", ");
  throw new UploadError(`${label} (from ${sources}) is not a valid upload, nothing was sent:\n${lines.join("\n")}`);
}
