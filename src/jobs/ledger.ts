import { sql } from "drizzle-orm";
import type { Db } from "../db/client";

/**
 * The job_runs ledger (migration 0011). Taking the lease is inserting the job's `running` row: the partial
 * unique index on (job) where outcome = 'running' refuses a second one while the first runs, and the partial
 * unique (job, scheduled_at) refuses a trigger that already ran. Lease times are the database's clock (they
 * are about the run's execution, shared by every Worker); the scheduled time stays the run's data cut-off.
 */

/** Why a lease was refused: another run of the job is live, or this scheduled time already succeeded. */
export type LeaseRefusal = "running" | "already_succeeded";

export type Lease = { taken: true; id: string } | { taken: false; reason: LeaseRefusal; note: string };

/** Ledger text for a run the next one found still `running` after its lease ran out. */
export const LEASE_EXPIRED = "lease expired: the run ended without recording its outcome";

export async function takeLease(db: Db, job: string, scheduledAt: Date, leaseMs: number): Promise<Lease> {
  const at = scheduledAt.toISOString();
  // One request, one transaction: a run whose lease ran out (a crashed Worker) is closed as failed, then the
  // new run's row goes in unless another live run or this trigger's earlier run refuses it.
  const [, inserted] = await db.batch([
    db.execute(sql`
      update job_runs set outcome = 'failed', finished_at = now(), error = ${LEASE_EXPIRED}
      where job = ${job} and outcome = 'running' and lease_until < now()`),
    db.execute<{ id: string }>(sql`
      insert into job_runs (job, scheduled_at, outcome, lease_until)
      values (${job}, ${at}::timestamptz, 'running', now() + make_interval(secs => ${leaseMs / 1000}::float8))
      on conflict do nothing
      returning id`),
  ]);
  if (inserted.rows.length) return { taken: true, id: inserted.rows[0].id };

  // Refused: say why in a skipped row of its own (skipped rows are outside both unique indexes).
  const result = await db.execute<{ id: string; reason: LeaseRefusal; note: string }>(sql`
    with holder as (
      select case when outcome = 'succeeded' then 'already_succeeded' else 'running' end as reason,
        case when outcome = 'succeeded' then 'this scheduled time already succeeded (run ' || id || ')'
          else 'another run holds the lease (run ' || id || ', scheduled ' ||
            to_char(scheduled_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ')' end as note
      from job_runs
      where job = ${job} and (outcome = 'running' or (outcome = 'succeeded' and scheduled_at = ${at}::timestamptz))
      order by (outcome = 'succeeded') desc
      limit 1
    )
    insert into job_runs (job, scheduled_at, outcome, finished_at, error)
    select ${job}, ${at}::timestamptz, 'skipped', now(), coalesce((select note from holder), 'the lease was refused')
    returning id, coalesce((select reason from holder), 'running') as reason, error as note`);
  const row = result.rows[0];
  return { taken: false, reason: row.reason, note: row.note };
}

export interface RunEnd {
  outcome: "succeeded" | "skipped" | "failed";
  counts?: Record<string, number>;
  /** A skipped run's note, or a failed run's description (without parameters). */
  error?: string;
}

/**
 * Records how the run ended. False when its row was no longer `running`: the lease ran out and a later run
 * closed it as failed (the run's work was done, but too late to be trusted by the ledger).
 */
export async function finishRun(db: Db, id: string, end: RunEnd): Promise<boolean> {
  const result = await db.execute<{ id: string }>(sql`
    update job_runs
    set outcome = ${end.outcome}, finished_at = now(),
      counts = ${end.counts ? JSON.stringify(end.counts) : null}::jsonb, error = ${end.error ?? null}
    where id = ${id} and outcome = 'running'
    returning id`);
  return result.rows.length === 1;
}
