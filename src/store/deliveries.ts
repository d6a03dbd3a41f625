import type { EventDbRow } from "../events/serialize";
import { eventsByKeyJoin } from "./fragments";
import { scanAll, typeMatch } from "./scan";

/**
 * Webhook deliveries (db/webhook-deliveries.ts) and the webhooks' reads of stored events: the
 * fan-out, the delivery consumer and replay load events one way, by primary key or by id.
 */

/** An event named by its primary key. */
export interface EventKey {
  account_id: string;
  occurred_at: number;
  id: string;
}

const EVENTS_BY_KEY = `SELECT e.* FROM ${eventsByKeyJoin()}`;

/**
 * The stored events named by primary key, one statement for up to a few hundred keys: a join on
 * json_each, so each key is one primary-key lookup (a row-value IN would use only the key's first
 * column and walk the account's events). Events not stored are left out.
 */
export function eventsByKeyStatement(db: D1Database, keys: readonly EventKey[]): D1PreparedStatement {
  return db.prepare(EVENTS_BY_KEY).bind(JSON.stringify(keys.map((k) => [k.account_id, k.occurred_at, k.id])));
}

/** The stored (enriched) events named by primary key, any number of them, in statements of 500. */
export async function eventsByKey(db: D1Database, keys: readonly EventKey[]): Promise<EventDbRow[]> {
  const out: EventDbRow[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const { results } = await eventsByKeyStatement(db, keys.slice(i, i + 500)).all<EventDbRow>();
    out.push(...results);
  }
  return out;
}

/** An account's retained events by id (no index by id alone: this walks the account's retained events). */
export async function eventsByIds(
  db: D1Database,
  accountId: string,
  since: number,
  ids: readonly string[],
): Promise<EventDbRow[]> {
  const { results } = await db
    .prepare(
      `SELECT * FROM events
       WHERE account_id = ?1 AND occurred_at >= ?2 AND id IN (SELECT value FROM json_each(?3))`,
    )
    .bind(accountId, since, JSON.stringify([...new Set(ids)]))
    .all<EventDbRow>();
  return results;
}

/** A delivery row as the delivery consumer reads it. */
export interface DeliveryStateRow {
  endpoint_id: string;
  event_occurred_at: number;
  event_id: string;
  status: string;
  attempts: number;
  first_attempt_at: number;
  last_attempt_at: number;
}

/** The delivery rows of (endpoint, event occurred_at, event id) keys, one primary-key lookup each. */
export function deliveriesByKeyStatement(
  db: D1Database,
  keys: readonly { endpoint_id: string; occurred_at: number; event_id: string }[],
): D1PreparedStatement {
  return db
    .prepare(
      `SELECT d.endpoint_id, d.event_occurred_at, d.event_id, d.status, d.attempts, d.first_attempt_at,
                d.last_attempt_at
         FROM json_each(?1) AS k JOIN webhook_deliveries AS d
           ON d.endpoint_id = k.value->>0 AND d.event_occurred_at = k.value->>1 AND d.event_id = k.value->>2`,
    )
    .bind(JSON.stringify(keys.map((k) => [k.endpoint_id, k.occurred_at, k.event_id])));
}

/** One attempt's outcome: the delivery's only write for it. */
export interface DeliveryWrite {
  endpoint_id: string;
  event_occurred_at: number;
  event_id: string;
  account_id: string;
  event_type: string;
  status: string;
  attempts: number;
  first_attempt_at: number;
  last_attempt_at: number;
  next_attempt_at: number | null;
  response_status: number | null;
  error: string | null;
}

/** One upsert (1 row written). */
export function upsertDelivery(db: D1Database, d: DeliveryWrite): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO webhook_deliveries (endpoint_id, event_occurred_at, event_id, account_id, event_type, status,
       attempts, first_attempt_at, last_attempt_at, next_attempt_at, response_status, error)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
       first_attempt_at = excluded.first_attempt_at, last_attempt_at = excluded.last_attempt_at,
       next_attempt_at = excluded.next_attempt_at, response_status = excluded.response_status, error = excluded.error`,
    )
    .bind(
      d.endpoint_id,
      d.event_occurred_at,
      d.event_id,
      d.account_id,
      d.event_type,
      d.status,
      d.attempts,
      d.first_attempt_at,
      d.last_attempt_at,
      d.next_attempt_at,
      d.response_status,
      d.error,
    );
}

/** A delivery row as the deliveries list shows it. */
export interface DeliveryListRow {
  event_occurred_at: number;
  event_id: string;
  event_type: string;
  status: string;
  attempts: number;
  last_attempt_at: number;
  next_attempt_at: number | null;
  response_status: number | null;
  error: string | null;
}

/**
 * One endpoint's delivery rows, newest event first, keyset on (event_occurred_at, event_id) along the
 * primary key; `status` and `eventId` are residual filters on that range. Reads `limit` rows at most.
 */
export async function listDeliveryRows(
  db: D1Database,
  q: {
    accountId: string;
    endpointId: string;
    before: { occurredAt: number; eventId: string } | null;
    status: string | null;
    eventId: string | null;
    limit: number;
  },
): Promise<DeliveryListRow[]> {
  const where = ["endpoint_id = ?1", "account_id = ?2"];
  const params: (string | number)[] = [q.endpointId, q.accountId];
  if (q.before) {
    params.push(q.before.occurredAt, q.before.eventId);
    where.push(`(event_occurred_at, event_id) < (?${params.length - 1}, ?${params.length})`);
  }
  if (q.status !== null) {
    params.push(q.status);
    where.push(`status = ?${params.length}`);
  }
  if (q.eventId !== null) {
    params.push(q.eventId);
    where.push(`event_id = ?${params.length}`);
  }
  params.push(q.limit);
  const { results } = await db
    .prepare(
      `SELECT event_occurred_at, event_id, event_type, status, attempts, last_attempt_at, next_attempt_at,
            response_status, error
     FROM webhook_deliveries WHERE ${where.join(" AND ")}
     ORDER BY event_occurred_at DESC, event_id DESC LIMIT ?${params.length}`,
    )
    .bind(...params)
    .all<DeliveryListRow>();
  return results;
}

/**
 * An account's events of a window of the given types, oldest first, at most `limit` (webhook replay
 * of a window): the store's streaming scan, newest first, turned around.
 */
export async function eventsInWindowOldestFirst(
  db: D1Database,
  accountId: string,
  q: { start: number; end: number; types: readonly string[] | null; limit: number },
): Promise<EventDbRow[]> {
  const { rows } = await scanAll(db, {
    accountId,
    window: q,
    path: { kind: "time" },
    match: typeMatch(q.types),
    from: null,
    limit: q.limit,
    budget: Number.POSITIVE_INFINITY,
  });
  return rows.reverse();
}
