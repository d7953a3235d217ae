/**
 * The CI run an upload belongs to: commit, branch, pull request and run id, from flags over CI variables.
 */
import { CI_VARIABLES, type CiInfo, type CiProvider, detectCi, type Env } from "./ci-env.ts";

export const CI_NAMES: Record<CiProvider, string> = {
  "github-actions": "GitHub Actions",
  gitlab: "GitLab CI",
  buildkite: "Buildkite",
  circleci: "CircleCI",
  jenkins: "Jenkins",
};

export interface RunFlags {
  commit?: string;
  branch?: string;
  pullRequest?: string;
  runId?: string;
}

export function blankToUndefined(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** Commit, branch, PR and run id: flags win over CI variables. Pure; the contract judges the values later. */
export function resolveRunContext(flags: RunFlags, env: Env): CiInfo {
  const ci = detectCi(env);
  return {
    provider: ci.provider,
    commit: blankToUndefined(flags.commit) ?? ci.commit,
    branch: blankToUndefined(flags.branch) ?? ci.branch,
    pullRequest: blankToUndefined(flags.pullRequest) ?? ci.pullRequest,
    runId: blankToUndefined(flags.runId) ?? ci.runId,
  };
}

/** Why there is no commit or run id, and what to do about it. */
export function missingRunValue(what: "commit" | "runId", provider: CiProvider | null): string {
  const noun = what === "commit" ? "commit SHA" : "run id";
  const flag = what === "commit" ? "--commit" : "--run-id";
  if (provider) {
    return `no ${noun}: ${CI_NAMES[provider]} detected but ${CI_VARIABLES[provider][what]} is not set; pass ${flag}`;
  }
  return `no ${noun}: pass ${flag}, or run in a CI the uploader recognises (GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins)`;
}
