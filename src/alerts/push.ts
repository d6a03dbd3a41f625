import type { Env } from "../env";
import { sendDeliveries } from "../webhooks/enqueue";
import { endpointsOf } from "../webhooks/store";
import type { AlertDbRow } from "./schema";

/**
 * Hands written alerts to the webhook queue (SPEC §14, §19): one delivery per (alert, enabled
 * endpoint subscribed to its type), then marks them pushed. An alert is delivered once per
 * transition: its `webhook-id` is its id, and the delivery consumer drops a first-run message for an
 * (endpoint, alert) it already has a delivery row for, so a push repeated after a failed mark is safe.
 * Endpoint filters (topic, campaign, domain, tags) are about events and do not apply to alerts.
 */

const PUSH_LIMIT = 500;

export async function pushPendingAlerts(env: Env, now: number): Promise<number> {
  const { results } = await env.DB.prepare(
    `SELECT * FROM alerts INDEXED BY alerts_unpushed_idx WHERE pushed_at IS NULL ORDER BY occurred_at LIMIT ?1`,
  )
    .bind(PUSH_LIMIT)
    .all<AlertDbRow>();
  if (results.length === 0) return 0;
  const endpoints = await endpointsOf(
    env,
    results.map((a) => a.account_id),
    now,
  );
  const deliveries = results.flatMap((alert) =>
    (endpoints.get(alert.account_id) ?? [])
      .filter(
        ({ row, sub }) =>
          row.status === "enabled" && (sub.eventTypes === null || sub.eventTypes.has(alert.type)),
      )
      .map(({ row }) => ({
        body: {
          type: "deliver" as const,
          account_id: alert.account_id,
          endpoint_id: row.id,
          event_id: alert.id,
          occurred_at: alert.occurred_at,
        },
      })),
  );
  await sendDeliveries(env, deliveries);
  // One primary-key update each (a row-value IN over a list would scan the table).
  await env.DB.batch(
    results.map((a) =>
      env.DB.prepare(
        "UPDATE alerts SET pushed_at = ?4 WHERE account_id = ?1 AND occurred_at = ?2 AND id = ?3",
      ).bind(a.account_id, a.occurred_at, a.id, now),
    ),
  );
  return results.length;
}
