/**
 * The per-email half of an erasure (SPEC §20) on one event shard (called by src/erasures/run.ts): the address's events, their
 * webhook deliveries, its click-burst marks, and the registrations (with their Message-ID map rows)
 * of emails that have no event of anyone else left. Handed the D1 database it works on (§17: the
 * erasure runs it on every shard of the account). Rollup counts stay (they hold no address).
 *
 * Bounded: events go in pages of EVENT_PAGE through events_recipient_idx, each page in one
 * transaction with its deliveries and marks, so a crash leaves a consistent state and a rerun
 * finishes the rest.
 */

const EVENT_PAGE = 1000;

export interface ShardRemoved {
  events: number;
  deliveries: number;
  registrations: number;
}

export async function eraseEventsOnShard(
  db: D1Database,
  accountId: string,
  email: string,
  /** Every endpoint id of the account (deliveries are keyed by endpoint). */
  endpointIds: string[],
): Promise<ShardRemoved> {
  const removed: ShardRemoved = { events: 0, deliveries: 0, registrations: 0 };
  const emailIds = new Set<string>();
  const endpoints = JSON.stringify(endpointIds);
  for (;;) {
    const { results } = await db
      .prepare(
        `SELECT occurred_at, id, email_id FROM events INDEXED BY events_recipient_idx
          WHERE account_id = ?1 AND recipient = ?2 LIMIT ?3`,
      )
      .bind(accountId, email, EVENT_PAGE)
      .all<{ occurred_at: number; id: string; email_id: string }>();
    if (results.length === 0) break;
    for (const r of results) emailIds.add(r.email_id);
    const keys = JSON.stringify(results.map((r) => [r.occurred_at, r.id]));
    const [deliveries, events] = await db.batch([
      // One primary-key delete per (endpoint, event).
      db
        .prepare(
          `DELETE FROM webhook_deliveries WHERE (endpoint_id, event_occurred_at, event_id) IN (
             SELECT w.value, k.value->>0, k.value->>1 FROM json_each(?1) AS w, json_each(?2) AS k)`,
        )
        .bind(endpoints, keys),
      db
        .prepare(
          `DELETE FROM events WHERE account_id = ?1
              AND (occurred_at, id) IN (SELECT value->>0, value->>1 FROM json_each(?2))`,
        )
        .bind(accountId, keys),
    ]);
    removed.deliveries += deliveries?.meta.changes ?? 0;
    removed.events += events?.meta.changes ?? 0;
    if (results.length < EVENT_PAGE) break;
  }
  const ids = [...emailIds];
  for (let i = 0; i < ids.length; i += EVENT_PAGE) {
    const chunk = JSON.stringify(ids.slice(i, i + EVENT_PAGE));
    // A registration goes when its email has no event left (of this address or anyone else).
    const orphan = `account_id = ?1 AND email_id IN (SELECT value FROM json_each(?2))
      AND NOT EXISTS (SELECT 1 FROM events AS e INDEXED BY events_email_idx
                       WHERE e.account_id = ?1 AND e.email_id = %T.email_id)`;
    const [, registrations] = await db.batch([
      db
        .prepare(`DELETE FROM message_ids WHERE ${orphan.replace("%T", "message_ids")}`)
        .bind(accountId, chunk),
      db.prepare(`DELETE FROM messages WHERE ${orphan.replace("%T", "messages")}`).bind(accountId, chunk),
      db
        .prepare(
          `DELETE FROM click_bursts WHERE account_id = ?1 AND email_id IN (SELECT value FROM json_each(?2))
              AND recipient = ?3`,
        )
        .bind(accountId, chunk, email),
    ]);
    removed.registrations += registrations?.meta.changes ?? 0;
  }
  return removed;
}
