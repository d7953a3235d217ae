import { z } from "@hono/zod-openapi";
import { readBodyCapped } from "../../lib/body";
import { ApiError } from "../../lib/errors";
import {
  CODEOWNERS_LIMITS,
  type CodeownersProblem,
  distinctOwners,
  parseCodeowners,
  replaceCodeowners,
} from "../../services/codeowners";
import { callerOf, serviceContext } from "../context";
import { apiApp, ERRORS, errorSchema, idParam, json, route } from "../openapi";

/** PUT /api/repos/:repoId/codeowners: the repository's CODEOWNERS file, the owners of its tests. */
export const codeownersRoutes = apiApp();

const TEXT_PLAIN = /^text\/plain[ \t]*(?:;[ \t]*charset[ \t]*=[ \t]*"?utf-8"?[ \t]*)?$/i;

const answer = z
  .object({
    rules: z.number().int().describe("Lines with a pattern (owner-less lines included)"),
    owners: z.array(z.string()).describe("Every owner named, distinct and sorted"),
  })
  .openapi("CodeownersAnswer");

codeownersRoutes.openapi(
  route("repo:write", {
    method: "put",
    path: "/repos/{repoId}/codeowners",
    tags: ["owners"],
    summary: "Replace the repository's CODEOWNERS",
    description:
      `A CODEOWNERS file with GitHub's rules (docs/codeowners.md): the last matching line gives a test's owners. ` +
      `\`text/plain\` in UTF-8, at most ${CODEOWNERS_LIMITS.bytes} bytes and ${CODEOWNERS_LIMITS.rules} rules. ` +
      "Malformed lines are a 400 naming each (`details[].path` is `line N`) and nothing changes; otherwise the " +
      "repository's CODEOWNERS owner rows are replaced at once (manual ones stay).",
    request: {
      params: z.object({ repoId: idParam("repoId") }),
      body: { content: { "text/plain": { schema: z.string() } }, required: true },
    },
    responses: {
      200: json(answer, "Stored"),
      ...ERRORS,
      413: { description: "Body too large", content: { "application/json": { schema: errorSchema } } },
      415: { description: "Not text/plain (UTF-8)", content: { "application/json": { schema: errorSchema } } },
    },
  }),
  async (c) => {
    if (!TEXT_PLAIN.test(c.req.header("content-type") ?? "")) {
      throw new ApiError("unsupported_media_type", "Content-Type must be text/plain (UTF-8).");
    }
    const text = decodeUtf8(await readBodyCapped(c.req.raw, CODEOWNERS_LIMITS.bytes));
    const parsed = parseCodeowners(text);
    if (!parsed.ok) {
      throw new ApiError("validation_failed", "The CODEOWNERS file is malformed.", problemDetails(parsed.problems));
    }
    const { repoId } = c.req.valid("param");
    await replaceCodeowners(serviceContext(c, "write"), { actorId: callerOf(c).userId, repoId, rules: parsed.rules });
    return c.json({ rules: parsed.rules.length, owners: distinctOwners(parsed.rules) }, 200);
  },
);

function decodeUtf8(body: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body);
  } catch {
    throw new ApiError("validation_failed", "The CODEOWNERS file is malformed.", [
      { path: "body", message: "is not valid UTF-8" },
    ]);
  }
}

/** Every malformed line as `{ path: "line N", message }`, the first CODEOWNERS_LIMITS.reportedProblems of them. */
function problemDetails(problems: readonly CodeownersProblem[]) {
  const listed = problems.slice(0, CODEOWNERS_LIMITS.reportedProblems).map((problem) => ({
    path: problem.line === 0 ? "body" : `line ${problem.line}`,
    message: problem.message,
  }));
  const more = problems.length - listed.length;
  return more > 0 ? [...listed, { path: "body", message: `${more} more malformed lines not listed` }] : listed;
}
