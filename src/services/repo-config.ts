import { sql } from "drizzle-orm";
import { auditQuery } from "./audit";
import type { ServiceContext } from "./context";
import { DEFAULT_ARTIFACT_PATTERNS } from "./github/artifacts";

/** Default weights of the flake score's factors (spec/flake-scoring.md); a repository may override them. */
export const DEFAULT_SCORING_WEIGHTS = { passRate: 0.3, volatility: 0.3, recencyFail: 0.2, clustering: 0.2 };
export type ScoringWeights = typeof DEFAULT_SCORING_WEIGHTS;

export type RepoConfigView = {
  retentionDays: number;
  scoringThreshold: number;
  requireTimestampedSignature: boolean;
  scoringWeights: ScoringWeights;
  /** Names of the workflow-run artifacts the GitHub App reads; DEFAULT_ARTIFACT_PATTERNS when never set. */
  githubArtifactPatterns: string[];
  updatedAt: Date | null;
};

export type RepoConfigChanges = Partial<
  Omit<RepoConfigView, "updatedAt" | "scoringWeights" | "githubArtifactPatterns">
> & {
  scoringWeights?: Partial<ScoringWeights>;
  /** null goes back to the defaults. */
  githubArtifactPatterns?: string[] | null;
};

type Row = {
  retention_days: number;
  scoring_threshold: number;
  require_timestamped_signature: boolean;
  weights: Partial<ScoringWeights> | null;
  artifact_patterns: string[] | null;
  updated_at: string | null;
};

function view(row: Row | undefined): RepoConfigView {
  return {
    retentionDays: row?.retention_days ?? 30,
    scoringThreshold: row?.scoring_threshold ?? 60,
    requireTimestampedSignature: row?.require_timestamped_signature ?? false,
    scoringWeights: { ...DEFAULT_SCORING_WEIGHTS, ...(row?.weights ?? {}) },
    githubArtifactPatterns: row?.artifact_patterns ?? [...DEFAULT_ARTIFACT_PATTERNS],
    updatedAt: row?.updated_at ? new Date(row.updated_at) : null,
  };
}

/** The repository's config; the defaults of schema.md when it never had one. */
export async function getRepoConfig(ctx: ServiceContext, repoId: string): Promise<RepoConfigView> {
  const result = await ctx.db.execute<Row>(sql`
    select retention_days, scoring_threshold, require_timestamped_signature, config->'scoringWeights' as weights,
      config->'githubArtifactPatterns' as artifact_patterns, updated_at
    from repository_configs where repo_id = ${repoId}`);
  return view(result.rows[0]);
}

/** Applies the changes (an upsert), audited with the names of the changed fields, in one request. */
export async function updateRepoConfig(
  ctx: ServiceContext,
  input: { actorId: string; repoId: string; changes: RepoConfigChanges },
): Promise<RepoConfigView> {
  const { changes } = input;
  const now = ctx.now().toISOString();
  const weights = changes.scoringWeights ? JSON.stringify({ scoringWeights: changes.scoringWeights }) : "{}";
  // Patterns replace the list (null removes it, back to the defaults).
  const patternsChange = changes.githubArtifactPatterns !== undefined;
  const patterns = changes.githubArtifactPatterns
    ? JSON.stringify({ githubArtifactPatterns: changes.githubArtifactPatterns })
    : null;
  const [result] = await ctx.db.batch([
    ctx.db.execute<Row>(sql`
      insert into repository_configs as rc (repo_id, retention_days, scoring_threshold, require_timestamped_signature,
        config, updated_at)
      values (${input.repoId}, coalesce(${changes.retentionDays ?? null}::int, 30),
        coalesce(${changes.scoringThreshold ?? null}::smallint, 60),
        coalesce(${changes.requireTimestampedSignature ?? null}::boolean, false),
        ${weights}::jsonb || coalesce(${patterns}::jsonb, '{}'::jsonb), ${now})
      on conflict (repo_id) do update set
        retention_days = coalesce(${changes.retentionDays ?? null}::int, rc.retention_days),
        scoring_threshold = coalesce(${changes.scoringThreshold ?? null}::smallint, rc.scoring_threshold),
        require_timestamped_signature =
          coalesce(${changes.requireTimestampedSignature ?? null}::boolean, rc.require_timestamped_signature),
        config = (case when ${changes.scoringWeights ? 1 : 0} = 1
          then jsonb_set(coalesce(rc.config, '{}'::jsonb), '{scoringWeights}',
            coalesce(rc.config->'scoringWeights', '{}'::jsonb) || (${weights}::jsonb->'scoringWeights'))
          else coalesce(rc.config, '{}'::jsonb) end) - (case when ${patternsChange ? 1 : 0} = 1 then 'githubArtifactPatterns' else '' end)
          || coalesce(${patterns}::jsonb, '{}'::jsonb),
        updated_at = excluded.updated_at
      returning retention_days, scoring_threshold, require_timestamped_signature, config->'scoringWeights' as weights,
        config->'githubArtifactPatterns' as artifact_patterns, updated_at`),
    auditQuery(ctx.db, {
      actorId: input.actorId,
      action: "config_updated",
      subject: "configuration",
      subjectId: input.repoId,
      description: "repository config updated",
      metadata: { changed: Object.keys(changes).sort() },
      requestId: ctx.requestId ?? null,
      createdAt: ctx.now(),
    }),
  ]);
  return view(result.rows[0]);
}
