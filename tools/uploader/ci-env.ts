/**
 * Reads commit, branch, pull request and run id from the variables a CI system sets.
 * A pure function of the env object it is given, so tests pass a plain object.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export type CiProvider = "github-actions" | "gitlab" | "buildkite" | "circleci" | "jenkins";

export interface CiInfo {
  /** Which CI was recognised, or null outside CI (or in one this does not know). */
  provider: CiProvider | null;
  commit?: string;
  branch?: string;
  pullRequest?: string;
  runId?: string;
}

/** The variable names, per CI, that the uploader reads (shown in error messages and the README). */
export const CI_VARIABLES: Record<CiProvider, { commit: string; runId: string }> = {
  "github-actions": { commit: "GITHUB_SHA", runId: "GITHUB_RUN_ID (+ GITHUB_RUN_ATTEMPT)" },
  gitlab: { commit: "CI_COMMIT_SHA", runId: "CI_PIPELINE_ID (or CI_JOB_ID)" },
  buildkite: { commit: "BUILDKITE_COMMIT", runId: "BUILDKITE_BUILD_ID (or BUILDKITE_JOB_ID)" },
  circleci: { commit: "CIRCLE_SHA1", runId: "CIRCLE_WORKFLOW_ID (or CIRCLE_BUILD_NUM)" },
  jenkins: { commit: "GIT_COMMIT", runId: "BUILD_TAG (or BUILD_NUMBER)" },
};

/** An unset or blank variable counts as absent: CI systems often export empty strings. */
function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function first(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = read(env, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

function githubActions(env: Env): CiInfo {
  const ref = read(env, "GITHUB_REF");
  const pr = ref?.match(/^refs\/pull\/(\d+)\/(?:merge|head)$/)?.[1];
  // On pull_request events GITHUB_REF_NAME is "<n>/merge"; the branch is GITHUB_HEAD_REF. A tag push has no branch.
  const branch =
    read(env, "GITHUB_HEAD_REF") ?? (ref?.startsWith("refs/tags/") ? undefined : read(env, "GITHUB_REF_NAME"));
  const runId = read(env, "GITHUB_RUN_ID");
  const attempt = read(env, "GITHUB_RUN_ATTEMPT");
  // A re-run keeps GITHUB_RUN_ID and bumps the attempt: it is another execution, so another run.
  return {
    provider: "github-actions",
    commit: read(env, "GITHUB_SHA"),
    branch,
    pullRequest: pr,
    runId: runId && attempt ? `${runId}-${attempt}` : runId,
  };
}

function gitlab(env: Env): CiInfo {
  const branch =
    read(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") ??
    (read(env, "CI_COMMIT_TAG") ? undefined : read(env, "CI_COMMIT_REF_NAME"));
  return {
    provider: "gitlab",
    commit: read(env, "CI_COMMIT_SHA"),
    branch,
    pullRequest: read(env, "CI_MERGE_REQUEST_IID"),
    runId: first(env, "CI_PIPELINE_ID", "CI_JOB_ID"),
  };
}

function buildkite(env: Env): CiInfo {
  const pr = read(env, "BUILDKITE_PULL_REQUEST");
  return {
    provider: "buildkite",
    commit: read(env, "BUILDKITE_COMMIT"),
    branch: read(env, "BUILDKITE_BRANCH"),
    pullRequest: pr === "false" ? undefined : pr,
    runId: first(env, "BUILDKITE_BUILD_ID", "BUILDKITE_JOB_ID"),
  };
}

function circleci(env: Env): CiInfo {
  // CIRCLE_PULL_REQUEST is the PR's URL (…/pull/123); CIRCLE_PR_NUMBER is set only for forked PRs.
  const fromUrl = read(env, "CIRCLE_PULL_REQUEST")?.match(/\/pull\/(\d+)\/?$/)?.[1];
  return {
    provider: "circleci",
    commit: read(env, "CIRCLE_SHA1"),
    branch: read(env, "CIRCLE_BRANCH"),
    pullRequest: fromUrl ?? read(env, "CIRCLE_PR_NUMBER"),
    runId: first(env, "CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"),
  };
}

function jenkins(env: Env): CiInfo {
  const pr = read(env, "CHANGE_ID");
  // In a multibranch PR build BRANCH_NAME is "PR-12"; the real source branch is CHANGE_BRANCH.
  const gitBranch = read(env, "GIT_BRANCH")?.replace(/^(?:refs\/remotes\/)?origin\//, "");
  const branch = (pr ? read(env, "CHANGE_BRANCH") : undefined) ?? read(env, "BRANCH_NAME") ?? gitBranch;
  return {
    provider: "jenkins",
    commit: read(env, "GIT_COMMIT"),
    branch,
    pullRequest: pr,
    runId: first(env, "BUILD_TAG", "BUILD_NUMBER"),
  };
}

/** Recognises the CI from its marker variable; the first match in this order wins. */
export function detectCi(env: Env): CiInfo {
  if (read(env, "GITHUB_ACTIONS") === "true") return githubActions(env);
  if (read(env, "GITLAB_CI") === "true") return gitlab(env);
  if (read(env, "BUILDKITE") === "true") return buildkite(env);
  if (read(env, "CIRCLECI") === "true") return circleci(env);
  if (read(env, "JENKINS_URL") || read(env, "JENKINS_HOME")) return jenkins(env);
  return { provider: null };
}
