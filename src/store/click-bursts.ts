import type { EventDbRow } from "../events/serialize";
import { jsonField } from "./fragments";

/**
 * Click-burst statements (SPEC §5; the decisions are src/tracking/burst-store.ts's): the stored clicks
 * and dropped-burst marks near a batch's clicks, the guard that they did not change, the deletion of
 * stored burst clicks and the marks of dropped ones. `windows` is a JSON array of
 * `{account_id, email_id, recipient, from, to}`.
 */

/** A stored click as read back for burst detection: the full row, so that it can be reversed elsewhere. */
export type StoredClickRow = EventDbRow & { network: string | null };

/** A dropped-burst mark (db/click-bursts.ts). */
export interface MarkRow {
  account_id: string;
  email_id: string;
  recipient: string;
  occurred_at: number;
  id: string;
  network: string | null;
  link: string;
}

const w = (field: string) => jsonField(field, "g.value");

/** The clicks of each window, through the email index (a few rows per recipient). */
const clicksIn = (select: string) => `
SELECT ${select}
FROM json_each(?1) AS g
JOIN events AS e INDEXED BY events_email_idx
  ON e.account_id = ${w("account_id")} AND e.email_id = ${w("email_id")}
 AND e.occurred_at BETWEEN ${w("from")} AND ${w("to")}
WHERE e.type = 'email.clicked' AND e.recipient = ${w("recipient")}`;

const marksIn = (select: string) => `
SELECT ${select} FROM json_each(?1) AS g
JOIN click_bursts AS b
  ON b.account_id = ${w("account_id")} AND b.email_id = ${w("email_id")} AND b.recipient = ${w("recipient")}
 AND b.occurred_at BETWEEN ${w("from")} AND ${w("to")}`;

const STORED_CLICKS = clicksIn(`e.*, json_extract(e.tracking, '$.url') AS tracking_url,
       json_extract(e.tracking, '$.link_name') AS tracking_link_name,
       json_extract(e.tracking, '$.ip_address') AS tracking_ip`);
const BURST_MARKS = marksIn("b.*");

/** One round trip: the windows' stored clicks (with `tracking_url`, `tracking_link_name`, `tracking_ip`) and their marks. */
export async function readClickWindows(db: D1Database, windows: string) {
  return db.batch([db.prepare(STORED_CLICKS).bind(windows), db.prepare(BURST_MARKS).bind(windows)]);
}

/**
 * Optimistic concurrency. The clicks and marks were read before the consumer's transaction; if
 * another consumer invocation changed them since (Queues runs batches concurrently when a backlog
 * builds), a decision made on the old state could keep part of a burst that the other batch dropped.
 * So the transaction starts by counting them again, one guard per recipient's group, and fails
 * (json_extract with a path that is not one raises an error naming the group, which rolls the whole
 * D1 batch back) when anything changed: the consumer writes the batch again without that group, and
 * retries the group alone with backoff, deciding again on the new state. D1 runs transactions one at a time, so the
 * check and the writes see the same state.
 */
const GUARD = `
SELECT CASE
  WHEN (${clicksIn("count(*) = ?2 AND coalesce(sum(e.occurred_at % 1000000), 0) = ?3")})
   AND (${marksIn("count(*) = ?4 AND coalesce(sum(b.occurred_at % 1000000), 0) = ?5")})
  THEN 1
  ELSE json_extract('{}', ?6)
END AS unchanged`;

/**
 * The failure a guard raises names its group: D1 reports `bad JSON path: 'burst-conflict-<group>'`
 * (json_extract of a path that is not one), so the consumer retries that group alone (SPEC §18).
 */
const CONFLICT_PATH = "burst-conflict-";
const CONFLICT = /bad JSON path: 'burst-conflict-(\d+)'/;

/** The group whose guard failed, from a D1 error (its cause chain), or null for any other error. */
export function burstConflictGroup(err: unknown): number | null {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const m = CONFLICT.exec(current.message);
    if (m) return Number(m[1]);
    current = current.cause;
  }
  return null;
}

/** A group's guard, first in the consumer's transaction: the counts and time sums read must still hold. */
export function clickWindowsGuard(
  db: D1Database,
  windows: string,
  clicks: number,
  clickSum: number,
  marks: number,
  markSum: number,
  group = 0,
): D1PreparedStatement {
  return db.prepare(GUARD).bind(windows, clicks, clickSum, marks, markSum, `${CONFLICT_PATH}${group}`);
}

const DELETE_CLICKS = `
DELETE FROM events
WHERE (account_id, occurred_at, id) IN (
  SELECT ${jsonField("account_id")}, ${jsonField("occurred_at")}, ${jsonField("id")}
  FROM json_each(?1))
  AND type = 'email.clicked'`;

/** Deletes stored clicks by primary key (their rollup contribution is taken back before, store/rollups.ts). */
export function deleteClicks(
  db: D1Database,
  rows: { account_id: string; occurred_at: number; id: string }[],
): D1PreparedStatement {
  const keys = rows.map((r) => ({ account_id: r.account_id, occurred_at: r.occurred_at, id: r.id }));
  return db.prepare(DELETE_CLICKS).bind(JSON.stringify(keys));
}

const MARK_COLUMNS = ["account_id", "email_id", "recipient", "occurred_at", "id", "network", "link"];
const INSERT_MARKS = `
INSERT INTO click_bursts (${MARK_COLUMNS.join(", ")})
SELECT ${MARK_COLUMNS.map((c) => jsonField(c)).join(", ")}
FROM json_each(?1) WHERE true
ON CONFLICT DO NOTHING`;

export function insertBurstMarks(db: D1Database, marks: MarkRow[]): D1PreparedStatement {
  return db.prepare(INSERT_MARKS).bind(JSON.stringify(marks));
}
