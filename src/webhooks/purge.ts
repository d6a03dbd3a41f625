import { effectivePlan } from "../config";
import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { DEFAULT_PURGE_BUDGET, type PurgeBudget } from "../retention/purge";
import { readCursor, writeCursor } from "../retention/task-cursor";
import { budgetedWalk, expiredDeliveriesWalk } from "../store";

/**
 * Webhook deliveries are kept as long as their event (SPEC §12, §14): this removes the rows whose
 * event is older than the account's retention, and every row of a deleted endpoint. Same shape as
 * the events purge: endpoints are found by an index seek on the deliveries' primary key (the next
 * endpoint_id after the last one), each endpoint's expired rows go in chunks along
 * (endpoint_id, event_occurred_at), and a run stops at its budget and resumes from a KV cursor.
 */

export const DELIVERY_PURGE_CURSOR_KEY = "meta:purge-webhook-deliveries";

export async function purgeExpiredDeliveries(
  env: Env,
  now: number,
  budget: PurgeBudget = DEFAULT_PURGE_BUDGET,
): Promise<{ endpoints: number; deleted: number; complete: boolean }> {
  const after = (await readCursor<{ after: string }>(env, DELIVERY_PURGE_CURSOR_KEY))?.after ?? "";
  // A deleted endpoint's rows all go; a live one's go with their events.
  const walk = expiredDeliveriesWalk(env.DB, (endpoint) =>
    endpoint.live ? now - effectivePlan(env, endpoint.plan).retention_days * DAY_MS : Number.MAX_SAFE_INTEGER,
  );
  const run = await budgetedWalk(walk, { after }, budget);
  await writeCursor(env, DELIVERY_PURGE_CURSOR_KEY, run.complete ? null : { after: run.after });
  return { endpoints: run.groups, deleted: run.deleted, complete: run.complete };
}
