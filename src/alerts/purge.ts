import type { Env } from "../env";
import { DAY_MS } from "../lib/params";

/** Alerts are kept 400 days (SPEC §19), like the rollups they come from. */
export const ALERT_RETENTION_DAYS = 400;
const CHUNK = 1000;

/**
 * Deletes alerts older than 400 days, in bounded chunks found through alerts_time_idx (it reads
 * only the rows it deletes).
 */
export async function purgeExpiredAlerts(env: Env, now: number): Promise<{ deleted: number }> {
  const cutoff = now - ALERT_RETENTION_DAYS * DAY_MS;
  let deleted = 0;
  for (let i = 0; i < 10; i++) {
    const { meta } = await env.DB.prepare(
      `DELETE FROM alerts WHERE (account_id, occurred_at, id) IN
         (SELECT account_id, occurred_at, id FROM alerts INDEXED BY alerts_time_idx WHERE occurred_at < ?1 LIMIT ?2)`,
    )
      .bind(cutoff, CHUNK)
      .run();
    deleted += meta.changes;
    if (meta.changes < CHUNK) break;
  }
  return { deleted };
}
