/**
 * Turns upload groups into uploads ("parts") that each respect the limits: at most `maxResults` results,
 * at most `maxBytes` of serialised body and at most the contract's number of report files. Every part is
 * checked against the contract's payload schema (validate.ts) and carries its own idempotency key, derived
 * from what it contains, so a CI job that runs the uploader again sends the same keys and the server
 * reports duplicates instead of storing the results twice.
 */
import { createHash } from "node:crypto";
import { LIMITS, WEBHOOK_ID_PATTERN } from "../../src/contract/ingestion.ts";
import { UploadError } from "./errors.ts";
import { countTestcases, escapedLength, splitJUnitXml } from "./junit-split.ts";
import { checkPayload, type ItemOrigin } from "./validate.ts";

/**
 * Top-level payload fields (spec field names). Values taken from a payload file are passed on as they are;
 * the contract's schema judges them before anything is sent.
 */
export interface PayloadFields {
  repo_id: string;
  commit_sha: string;
  run_id: string;
  framework: string;
  branch?: unknown;
  pull_request?: unknown;
  environment?: unknown;
  metadata?: unknown;
  /** Given by a JSON payload file: used as the key (suffixed per part when the group is split). */
  idempotency_key?: string;
}

/** One test result or one report entry, with where it came from (for messages). */
export interface Item {
  value: unknown;
  source: string;
  /** Position in its file's array; absent for a whole XML file. */
  index?: number;
}

/** Inputs that share one set of top-level fields. A body holds `tests` or `reports`, never both. */
export interface UploadGroup {
  kind: "tests" | "reports";
  fields: PayloadFields;
  items: Item[];
}

export interface Part {
  /** 0-based position among all parts of this upload. */
  index: number;
  total: number;
  key: string;
  kind: UploadGroup["kind"];
  fields: PayloadFields;
  /** The exact bytes to sign and send (UTF-8 JSON). */
  body: Uint8Array<ArrayBuffer>;
  /** Test results (for JUnit: testcase elements) in this part. */
  results: number;
  sources: string[];
}

export interface Limits {
  maxResults: number;
  maxBytes: number;
}

/** Deterministic key of one part: the same inputs in the same CI run always give the same key. */
export function idempotencyKey(input: {
  repoId: string;
  commit: string;
  runId: string;
  partIndex: number;
  contentHash: string;
}): string {
  const material = ["anchorpipe-upload/1", input.repoId, input.commit, input.runId, input.partIndex, input.contentHash];
  return `ap_${createHash("sha256").update(material.join("\n")).digest("hex")}`;
}

/** Bodies are measured with a key this long in them, before the real key (which hashes the content) is known. */
function keyPlaceholder(fields: PayloadFields): string {
  // A given key gets ".<n>" when its group is split; six digits is more parts than any upload has.
  return fields.idempotency_key === undefined ? `ap_${"0".repeat(64)}` : `${fields.idempotency_key}.999999`;
}

function envelope(fields: PayloadFields, key: string | undefined, kind: Part["kind"], items: unknown[]) {
  const body: Record<string, unknown> = {
    repo_id: fields.repo_id,
    commit_sha: fields.commit_sha,
    run_id: fields.run_id,
    framework: fields.framework,
  };
  if (fields.branch !== undefined) body.branch = fields.branch;
  if (fields.pull_request !== undefined) body.pull_request = fields.pull_request;
  if (fields.environment !== undefined) body.environment = fields.environment;
  if (fields.metadata !== undefined) body.metadata = fields.metadata;
  if (key !== undefined) body.idempotency_key = key;
  body[kind] = items;
  return body;
}

interface Sized {
  value: unknown;
  origin: ItemOrigin;
  bytes: number;
  results: number;
}

interface Draft {
  group: UploadGroup;
  items: Sized[];
  results: number;
}

/** Greedy packing, in input order, so the same inputs always give the same parts. */
function pack(group: UploadGroup, items: Sized[], envelopeBytes: number, limits: Limits): Draft[] {
  const maxItems = group.kind === "reports" ? LIMITS.reports : Number.POSITIVE_INFINITY;
  const drafts: Draft[] = [];
  let current: Draft | undefined;
  let bytes = 0;
  for (const item of items) {
    if (envelopeBytes + item.bytes > limits.maxBytes) {
      throw new UploadError(
        `${item.origin.source}: one entry is ${item.bytes} bytes, more than fits in an upload of --max-bytes ${limits.maxBytes}`,
      );
    }
    if (
      current &&
      (bytes + item.bytes > limits.maxBytes ||
        current.results + item.results > limits.maxResults ||
        current.items.length >= maxItems)
    ) {
      current = undefined;
    }
    if (!current) {
      current = { group, items: [], results: 0 };
      drafts.push(current);
      bytes = envelopeBytes;
    }
    current.items.push(item);
    current.results += item.results;
    bytes += item.bytes;
  }
  return drafts;
}

/** A JUnit report entry whose content can be measured and, when too large, cut. */
function junitReport(value: unknown): { format: "junit"; content: string } | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { format, content } = value as Record<string, unknown>;
  return format === "junit" && typeof content === "string" ? { format, content } : undefined;
}

/** Report entries sized for packing; JUnit documents too large for one body are cut into several. */
function sizedReports(group: UploadGroup, envelopeBytes: number, limits: Limits, warnings: string[]): Sized[] {
  const sized: Sized[] = [];
  for (const item of group.items) {
    const origin = { source: item.source, index: item.index };
    const report = junitReport(item.value);
    if (!report) {
      // The contract will say what is wrong with it.
      sized.push({ value: item.value, origin, bytes: Buffer.byteLength(JSON.stringify(item.value)) + 1, results: 0 });
      continue;
    }
    const wrapper = Buffer.byteLength(JSON.stringify({ ...(item.value as object), content: "" })) + 1;
    const room = limits.maxBytes - envelopeBytes - wrapper;
    const bytes = escapedLength(report.content);
    const results = countTestcases(report.content);
    if (bytes <= room && results <= limits.maxResults) {
      sized.push({ value: item.value, origin, bytes: wrapper + bytes, results });
      continue;
    }
    const split = splitJUnitXml(report.content, { maxBytes: room, maxResults: limits.maxResults }, item.source);
    warnings.push(...split.warnings);
    for (const doc of split.documents) {
      sized.push({
        value: { ...(item.value as object), content: doc.content },
        origin,
        bytes: wrapper + escapedLength(doc.content),
        results: doc.results,
      });
    }
  }
  return sized;
}

export interface Plan {
  parts: Part[];
  warnings: string[];
}

/**
 * Splits every group into parts within the limits, gives each its key and final body, and checks each
 * body against the contract. Throws UploadError for anything the service would refuse.
 */
export function planParts(groups: UploadGroup[], limits: Limits): Plan {
  const warnings: string[] = [];
  const drafts: Draft[] = [];
  for (const group of groups) {
    const envelopeBytes = Buffer.byteLength(
      JSON.stringify(envelope(group.fields, keyPlaceholder(group.fields), group.kind, [])),
    );
    const sized =
      group.kind === "tests"
        ? group.items.map((item) => ({
            value: item.value,
            origin: { source: item.source, index: item.index },
            // +1 per item for the comma: measuring one too many is harmless.
            bytes: Buffer.byteLength(JSON.stringify(item.value)) + 1,
            results: 1,
          }))
        : sizedReports(group, envelopeBytes, limits, warnings);
    drafts.push(...pack(group, sized, envelopeBytes, limits));
  }

  const parts = drafts.map((draft, index): Part => {
    const { fields, kind } = draft.group;
    const values = draft.items.map((item) => item.value);
    const label = `part ${index + 1}/${drafts.length}`;
    let key: string;
    if (fields.idempotency_key === undefined) {
      const contentHash = createHash("sha256")
        .update(JSON.stringify(envelope(fields, undefined, kind, values)))
        .digest("hex");
      key = idempotencyKey({
        repoId: fields.repo_id,
        commit: fields.commit_sha,
        runId: fields.run_id,
        partIndex: index,
        contentHash,
      });
    } else {
      const siblings = drafts.filter((d) => d.group === draft.group);
      key = siblings.length === 1 ? fields.idempotency_key : `${fields.idempotency_key}.${siblings.indexOf(draft) + 1}`;
      // v2 sends the key as the webhook-id header.
      if (!WEBHOOK_ID_PATTERN.test(key)) {
        throw new UploadError(
          `idempotency_key "${key}" cannot be a webhook-id: it must be 1–255 printable ASCII characters without spaces`,
        );
      }
    }
    const payload = envelope(fields, key, kind, values);
    checkPayload(
      payload,
      draft.items.map((item) => item.origin),
      label,
    );
    const body = new TextEncoder().encode(JSON.stringify(payload));
    if (body.length > limits.maxBytes) {
      // The measurements above are exact or overestimate; reaching this is a bug, not an input problem.
      throw new Error(`internal: ${label} is ${body.length} bytes, over the ${limits.maxBytes} limit`);
    }
    return {
      index,
      total: drafts.length,
      key,
      kind,
      fields,
      body,
      results: draft.results,
      sources: [...new Set(draft.items.map((item) => item.origin.source))],
    };
  });
  return { parts, warnings };
}
