import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { readCursor, writeCursor } from "../retention/task-cursor";
import { MAX_DAYS } from "./query";

/**
 * Keeps metric rollups for 400 days (SPEC §12), whatever the plan's event retention: the event
 * purge never touches them, and this deletes the rows older than 400 days, walking accounts by an
 * index seek and deleting in chunks through the primary key (account_id, bucket, …), like the
 * event purge. Bounded per run; resumes from a KV cursor.
 */

export const ROLLUP_PURGE_CURSOR_KEY = "meta:purge-rollups";

export interface RollupPurgeBudget {
  chunk: number;
  statements: number;
}

const NEXT_ACCOUNT =
  "SELECT account_id FROM metric_rollups WHERE account_id > ?1 ORDER BY account_id LIMIT 1";
const KEY = "account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags";
const DELETE_CHUNK = `
DELETE FROM metric_rollups WHERE (${KEY}) IN (
  SELECT ${KEY} FROM metric_rollups WHERE account_id = ?1 AND bucket < ?2 ORDER BY bucket LIMIT ?3)`;

const DAY_KEY = "account_id, bucket, campaign, template_id, topic, from_domain, tags";
const DELETE_DAY_CHUNK = `
DELETE FROM metric_rollups_day WHERE (${DAY_KEY}) IN (
  SELECT ${DAY_KEY} FROM metric_rollups_day WHERE account_id = ?1 AND bucket < ?2 ORDER BY bucket LIMIT ?3)`;
const LINK_KEY =
  "account_id, day, url, link_name, campaign, template_id, topic, from_domain, tags, mailbox_provider";
const DELETE_LINK_CHUNK = `
DELETE FROM link_rollups WHERE (${LINK_KEY}) IN (
  SELECT ${LINK_KEY} FROM link_rollups WHERE account_id = ?1 AND day < ?2 ORDER BY day LIMIT ?3)`;

export async function purgeExpiredRollups(
  env: Env,
  now: number,
  budget: RollupPurgeBudget = { chunk: 1000, statements: 200 },
): Promise<{ deleted: number; complete: boolean }> {
  const cutoff = now - MAX_DAYS * DAY_MS;
  let statements = 0;
  let deleted = 0;
  let after = (await readCursor<{ after: string }>(env, ROLLUP_PURGE_CURSOR_KEY))?.after ?? "";
  let complete = false;
  walk: while (statements < budget.statements) {
    statements += 1;
    const next = await env.DB.prepare(NEXT_ACCOUNT).bind(after).first<{ account_id: string }>();
    if (!next) {
      complete = true;
      break;
    }
    for (;;) {
      if (statements >= budget.statements) break walk;
      statements += 1;
      const { meta } = await env.DB.prepare(DELETE_CHUNK).bind(next.account_id, cutoff, budget.chunk).run();
      deleted += meta.changes;
      if (meta.changes < budget.chunk) break;
    }
    // The account's coarse rollups and link rollups (each of their rows has quarter-hour rows, so the walk finds them).
    for (;;) {
      if (statements >= budget.statements) break walk;
      statements += 1;
      const { meta } = await env.DB.prepare(DELETE_DAY_CHUNK)
        .bind(next.account_id, cutoff, budget.chunk)
        .run();
      deleted += meta.changes;
      if (meta.changes < budget.chunk) break;
    }
    for (;;) {
      if (statements >= budget.statements) break walk;
      statements += 1;
      const { meta } = await env.DB.prepare(DELETE_LINK_CHUNK)
        .bind(next.account_id, cutoff, budget.chunk)
        .run();
      deleted += meta.changes;
      if (meta.changes < budget.chunk) break;
    }
    after = next.account_id;
  }
  await writeCursor(env, ROLLUP_PURGE_CURSOR_KEY, complete ? null : { after });
  return { deleted, complete };
}
