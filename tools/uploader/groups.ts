/**
 * Collecting the loaded inputs into upload groups: inputs that share one set of top-level fields. XML
 * files go into one `reports` group, bare arrays of results into one `tests` group, and each payload file
 * into its own. Top-level fields come from flags, over CI variables, over the payload file's own values.
 */
import { FORMAT_FRAMEWORKS, type Framework, payloadSchema } from "../../src/contract/ingestion.ts";
import type { CiInfo } from "./ci-env.ts";
import { UploadError } from "./errors.ts";
import type { LoadedInput } from "./inputs.ts";
import { countTestcases } from "./junit-split.ts";
import type { Item, PayloadFields, UploadGroup } from "./parts.ts";
import { missingRunValue } from "./run-context.ts";

export interface GroupContext {
  repoId: string;
  run: CiInfo;
  /** From --framework; wins over the file's and the default. */
  framework?: Framework;
  warnings: string[];
}

type StringField = "repo_id" | "commit_sha" | "run_id" | "framework" | "idempotency_key";

/** A string field of a payload file; anything but a string (or null) is refused with the contract's words. */
function fileString(payload: Record<string, unknown>, field: StringField, source: string): string | undefined {
  const value = payload[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  const issue = payloadSchema.shape[field].safeParse(value).error?.issues[0];
  throw new UploadError(`${source}: ${field}: ${issue?.message ?? "must be a string"}`);
}

function fieldsFor(context: GroupContext, defaultFramework: Framework, file?: LoadedInput & { kind: "payload" }) {
  const { run } = context;
  const payload = file?.payload ?? {};
  const source = file?.source ?? "";
  const fileRepo = file && fileString(payload, "repo_id", source);
  if (fileRepo && fileRepo.toLowerCase() !== context.repoId) {
    context.warnings.push(`${source} names repo_id ${fileRepo}; sending as ${context.repoId} (--repo-id wins)`);
  }
  const where = source ? ` (for ${source})` : "";
  const commit = (run.commit ?? fileString(payload, "commit_sha", source))?.trim();
  if (!commit) throw new UploadError(missingRunValue("commit", run.provider) + where);
  const runId = run.runId ?? fileString(payload, "run_id", source);
  if (!runId) throw new UploadError(missingRunValue("runId", run.provider) + where);
  const fields: PayloadFields = {
    repo_id: context.repoId,
    commit_sha: commit.toLowerCase(),
    run_id: runId,
    framework: context.framework ?? fileString(payload, "framework", source) ?? defaultFramework,
    branch: run.branch ?? payload.branch ?? undefined,
    pull_request: run.pullRequest ?? payload.pull_request ?? undefined,
    environment: payload.environment ?? undefined,
    metadata: payload.metadata ?? undefined,
    idempotency_key: fileString(payload, "idempotency_key", source),
  };
  return fields;
}

export function buildGroups(inputs: LoadedInput[], context: GroupContext): UploadGroup[] {
  const groups: UploadGroup[] = [];
  let reports: Item[] | undefined;
  let reportsGroup: UploadGroup | undefined;
  let tests: Item[] | undefined;
  const nothingIn = (source: string, what: string) =>
    context.warnings.push(`${source}: no ${what}, nothing to send from it`);
  for (const input of inputs) {
    const { source } = input;
    if (input.kind === "junit" || input.kind === "report") {
      if (input.kind === "junit" && countTestcases(input.content) === 0) {
        nothingIn(source, "<testcase> elements");
        continue;
      }
      const framework = FORMAT_FRAMEWORKS[input.kind === "junit" ? "junit" : input.format];
      if (!reports) {
        reports = [];
        reportsGroup = { kind: "reports", fields: fieldsFor(context, framework), items: reports };
        groups.push(reportsGroup);
      } else if (reportsGroup && !context.framework && reportsGroup.fields.framework !== framework) {
        // Reports of several frameworks in one upload: the upload's framework says so.
        reportsGroup.fields.framework = "unknown";
      }
      const format = input.kind === "junit" ? "junit" : input.format;
      reports.push({ value: { format, content: input.content }, source });
    } else if (input.kind === "tests") {
      if (input.tests.length === 0) {
        nothingIn(source, "test results");
        continue;
      }
      if (!tests) {
        tests = [];
        groups.push({ kind: "tests", fields: fieldsFor(context, "unknown"), items: tests });
      }
      tests.push(...input.tests.map((value, index) => ({ value, source, index })));
    } else {
      const { payload } = input;
      const kind = "tests" in payload ? "tests" : "reports";
      const entries = payload[kind];
      if (!Array.isArray(entries)) throw new UploadError(`${source}: "${kind}" must be an array`);
      if (entries.length === 0) {
        nothingIn(source, kind === "tests" ? "test results" : "reports");
        continue;
      }
      groups.push({
        kind,
        fields: fieldsFor(context, kind === "reports" ? "junit" : "unknown", input),
        items: entries.map((value, index) => ({ value, source, index })),
      });
    }
  }
  return groups;
}
