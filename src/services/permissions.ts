/**
 * Who may do what (spec/api.md, "Roles per repository"): the one permission
 * table, as data. Every route names the permission it needs
 * (src/api/route.ts); no handler checks a role itself.
 */
export const REPO_ROLES = ["admin", "member", "read_only"] as const;
export type RepoRole = (typeof REPO_ROLES)[number];

export const REPO_PERMISSIONS = {
  /** Read the repository, its tests, runs, ingestions, scores, quarantine list and config. */
  "repo:read": ["admin", "member", "read_only"],
  /** Update config, CODEOWNERS and quarantine overrides. */
  "repo:write": ["admin", "member"],
  /** Manage roles and signing secrets, read the repository's audit log, delete the repository. */
  "repo:admin": ["admin"],
} as const satisfies Record<string, readonly RepoRole[]>;

export type RepoPermission = keyof typeof REPO_PERMISSIONS;

/**
 * What a route requires of its caller. `public`: nobody (health, the API
 * document); `signed`: a repository signature (CI uploads); `user`: any valid
 * personal token; a repository permission: a token whose user holds a role
 * granting it on the `:repoId` of the path; `platform_admin`: the operators.
 */
export type Access = "public" | "signed" | "user" | RepoPermission | "platform_admin";

export function roleGrants(role: RepoRole | null | undefined, permission: RepoPermission): boolean {
  return role != null && (REPO_PERMISSIONS[permission] as readonly RepoRole[]).includes(role);
}
