import { effectivePlan } from "../config";
import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { DEFAULT_PURGE_BUDGET, type PurgeBudget } from "../retention/purge";
import { readCursor, writeCursor } from "../retention/task-cursor";

/**
 * Webhook deliveries are kept as long as their event (SPEC §12, §14): this removes the rows whose
 * event is older than the account's retention, and every row of a deleted endpoint. Same shape as
 * the events purge: endpoints are found by an index seek on the deliveries' primary key (the next
 * endpoint_id after the last one), each endpoint's expired rows go in chunks along
 * (endpoint_id, event_occurred_at), and a run stops at its budget and resumes from a KV cursor.
 */

export const DELIVERY_PURGE_CURSOR_KEY = "meta:purge-webhook-deliveries";

const NEXT_ENDPOINT = `
SELECT d.endpoint_id AS endpoint_id, (w.id IS NOT NULL) AS live, a.plan AS plan
FROM (SELECT endpoint_id, account_id FROM webhook_deliveries WHERE endpoint_id > ?1 ORDER BY endpoint_id LIMIT 1) AS d
LEFT JOIN webhook_endpoints AS w ON w.account_id = d.account_id AND w.id = d.endpoint_id
LEFT JOIN accounts AS a ON a.id = d.account_id`;

const DELETE_CHUNK = `
DELETE FROM webhook_deliveries WHERE (endpoint_id, event_occurred_at, event_id) IN (
  SELECT endpoint_id, event_occurred_at, event_id FROM webhook_deliveries
  WHERE endpoint_id = ?1 AND event_occurred_at < ?2 ORDER BY event_occurred_at LIMIT ?3)`;

export async function purgeExpiredDeliveries(
  env: Env,
  now: number,
  budget: PurgeBudget = DEFAULT_PURGE_BUDGET,
): Promise<{ endpoints: number; deleted: number; complete: boolean }> {
  const started = Date.now();
  let statements = 0;
  let deleted = 0;
  let endpoints = 0;
  const exhausted = () =>
    statements >= budget.statements || deleted >= budget.rows || Date.now() - started >= budget.timeMs;

  let after = (await readCursor<{ after: string }>(env, DELIVERY_PURGE_CURSOR_KEY))?.after ?? "";
  let complete = false;
  walk: while (!exhausted()) {
    statements += 1;
    const next = await env.DB.prepare(NEXT_ENDPOINT)
      .bind(after)
      .first<{ endpoint_id: string; live: number; plan: string | null }>();
    if (!next) {
      complete = true;
      break;
    }
    // A deleted endpoint's rows all go; a live one's go with their events.
    const cutoff = next.live
      ? now - effectivePlan(env, next.plan).retention_days * DAY_MS
      : Number.MAX_SAFE_INTEGER;
    for (;;) {
      if (exhausted()) break walk;
      const limit = Math.min(budget.chunk, budget.rows - deleted);
      statements += 1;
      const { meta } = await env.DB.prepare(DELETE_CHUNK).bind(next.endpoint_id, cutoff, limit).run();
      deleted += meta.changes;
      if (meta.changes < limit) break;
    }
    endpoints += 1;
    after = next.endpoint_id;
  }
  await writeCursor(env, DELIVERY_PURGE_CURSOR_KEY, complete ? null : { after });
  return { endpoints, deleted, complete };
}
