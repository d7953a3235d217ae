import { type SQL, sql } from "drizzle-orm";
import type { ServiceContext } from "../context";

/**
 * github_webhook_deliveries: the X-GitHub-Delivery ids already handled. GitHub redelivers with the same id
 * (by hand, or through its API), so a delivery id seen before is acknowledged and changes nothing.
 *
 * Every handler writes its change in one statement that starts with `deliveryCte`: the insert of the
 * delivery row `on conflict do nothing`, with every other part of the statement conditional on it having
 * returned a row. Two copies arriving at once: the second insert waits for the first transaction and then
 * inserts nothing, so exactly one copy's change is made.
 */

export type DeliveryOutcome = "applied" | "queued" | "ignored";

export interface Delivery {
  deliveryId: string;
  event: string;
  action: string | null;
  /** Decimal string (a 64-bit GitHub id). */
  installationId: string | null;
}

/** Deliveries are kept this long; GitHub offers redelivery of the last 3 days only. */
export const DELIVERY_RETENTION_DAYS = 30;

/**
 * `delivery as (insert … on conflict do nothing returning delivery_id, outcome)`, for the head of a `with`.
 * `outcome` is SQL so it can depend on what the statement finds.
 */
export function deliveryCte(ctx: ServiceContext, delivery: Delivery, outcome: SQL): SQL {
  return sql`delivery as (
    insert into github_webhook_deliveries (delivery_id, event, action, installation_id, outcome, received_at)
    values (${delivery.deliveryId}::uuid, ${delivery.event}, ${delivery.action}, ${delivery.installationId}::bigint,
      ${outcome}, ${ctx.now().toISOString()}::timestamptz)
    on conflict (delivery_id) do nothing
    returning delivery_id, outcome
  )`;
}

/** Undoes a delivery whose work could not be handed on, so GitHub's redelivery of it is not a duplicate. */
export function deleteDeliveryQuery(ctx: ServiceContext, deliveryId: string) {
  return ctx.db.execute(sql`delete from github_webhook_deliveries where delivery_id = ${deliveryId}::uuid`);
}

/** Deletes up to `limit` deliveries received before `cutoff`; returns how many. */
export async function purgeDeliveries(ctx: ServiceContext, cutoff: Date, limit: number): Promise<number> {
  const result = await ctx.db.execute<{ n: number }>(sql`
    with gone as (
      delete from github_webhook_deliveries where delivery_id in (
        select delivery_id from github_webhook_deliveries
        where received_at < ${cutoff.toISOString()}::timestamptz limit ${limit}::int)
      returning 1
    ) select count(*)::int as n from gone`);
  return result.rows[0].n;
}
