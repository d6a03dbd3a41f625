import type { EventDbRow } from "../events/serialize";
import { eventsByKeyJoin } from "./fragments";
import { scan, scanAll, typeMatch } from "./scan";

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

/** At most this many rows are read to find events by id (SPEC §18's per-request budget). */
export const EVENTS_BY_ID_BUDGET = 10_000;

/**
 * An account's retained events by id, within the §18 budget. There is no index by id alone (it
 * would cost every event one more row written), so: an id whose time the caller knows (`hints`: a
 * tracking event's replay id names its bucket) is read by key range, and the others are looked for
 * among the account's newest retained events, newest first, reading at most
 * EVENTS_BY_ID_BUDGET rows in all. An id older than that is not found (as an unknown or purged
 * id is not); `exhausted` says the budget ran out before every id was found.
 */
export async function eventsByIds(
  db: D1Database,
  accountId: string,
  since: number,
  ids: readonly string[],
  hints: ReadonlyMap<string, { start: number; end: number }> = new Map(),
): Promise<EventDbRow[] & { exhausted?: boolean; rowsRead?: number }> {
  const wanted = [...new Set(ids)];
  const found = new Map<string, EventDbRow>();
  let rowsRead = 0;
  const hinted = wanted.filter((id) => hints.has(id));
  if (hinted.length > 0) {
    const statements = hinted.map((id) => {
      const h = hints.get(id) as { start: number; end: number };
      return db
        .prepare(
          "SELECT * FROM events WHERE account_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3 AND id = ?4",
        )
        .bind(accountId, Math.max(since, h.start), h.end, id);
    });
    for (const r of await db.batch<EventDbRow>(statements)) {
      rowsRead += r.meta.rows_read ?? 0;
      for (const row of r.results) found.set(row.id, row);
    }
  }
  const rest = wanted.filter((id) => !found.has(id));
  let exhausted = false;
  if (rest.length > 0) {
    // A bare walk (its chunks cost their rows) with the ids tested in JS: an SQL match would make
    // the scanner re-read each chunk to find its end, covering half as many rows for the budget.
    const want = new Set(rest);
    const walk = scan(db, {
      accountId,
      window: { start: since, end: Number.MAX_SAFE_INTEGER },
      path: { kind: "time" },
      match: null,
      residual: (row) => want.has(row.id),
      from: null,
      limit: EVENTS_BY_ID_BUDGET,
      budget: Math.max(1, EVENTS_BY_ID_BUDGET - rowsRead),
    });
    for (;;) {
      const step = await walk.next();
      if (step.done) {
        rowsRead += step.value.rowsRead;
        exhausted = step.value.hasMore && found.size < wanted.length;
        break;
      }
      for (const row of step.value as EventDbRow[]) found.set(row.id, row);
      if (rest.every((id) => found.has(id))) {
        // Everything found: stop reading (`rowsRead` then leaves the walk out; it read at most its budget).
        await walk.return({ hasMore: false, next: null, rowsRead: 0 });
        break;
      }
    }
  }
  return Object.assign([...found.values()], { exhausted, rowsRead });
}

/**
 * An endpoint's deliveries waiting for a retry, counted up to `cap` (a SPEC §18 cap needs no more):
 * read on the partial index webhook_deliveries_pending_idx, so at most `cap` rows.
 */
export async function countPendingDeliveries(
  db: D1Database,
  endpointId: string,
  cap: number,
): Promise<number> {
  const row = await db
    .prepare(
      `SELECT COUNT(*) AS n FROM (SELECT 1 FROM webhook_deliveries INDEXED BY webhook_deliveries_pending_idx
       WHERE endpoint_id = ?1 AND status = 'pending' LIMIT ?2)`,
    )
    .bind(endpointId, cap)
    .first<{ n: number }>();
  return row?.n ?? 0;
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
