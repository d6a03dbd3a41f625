/**
 * Burst detection in the events consumer (SPEC §5): the D1 side of src/tracking/bursts.ts.
 *
 * For a queue batch, the consumer calls findClickBursts before it writes. Only batches with clicks
 * read anything: one D1 round trip (two reads in one batch) fetches, for each (account, email_id,
 * recipient) with clicks in the batch, its stored clicks and dropped-burst marks within
 * BURST_LOOKAROUND_MS of them. planBursts decides; the result says which arriving clicks to keep,
 * and carries the statements that check nothing changed since the read (GUARD), delete the stored
 * burst clicks and remember the burst, which the consumer runs in the same D1 transaction as its
 * inserts.
 *
 * `dropped` and `removed` name the events that are not (or no longer) recorded, for whatever else
 * the consumer does with new events: a metrics rollup that counted a removed click on its first
 * arrival must subtract it again in the same transaction, and a webhook fan-out must not send a
 * dropped click. The hot path never comes here: it stays free of D1 and KV (§1).
 */
import type { EventRecord, Tracking } from "../events/record";
import type { EventDbRow } from "../events/serialize";
import { log } from "../lib/log";
import type { EventMessage } from "../pipeline/messages";
import {
  BURST_LOOKAROUND_MS,
  BURST_MARK_RETENTION_MS,
  type BurstClick,
  linkOf,
  planBursts,
  prefixOf,
} from "./bursts";

/** A stored click as read back for burst detection: the full row, so that it can be reversed elsewhere. */
export type StoredClickRow = EventDbRow & { network: string | null };

export interface ClickBursts {
  /** The batch's events to write: every non-click, and every click that is not part of a burst. */
  kept: EventMessage[];
  /** Arriving clicks dropped as part of a burst (never written). */
  dropped: EventMessage[];
  /** Stored clicks that the statements delete (written by an earlier batch, part of a burst now). */
  removed: StoredClickRow[];
  /** Run these in the consumer's transaction: delete `removed`, remember the burst's clicks. */
  statements: D1PreparedStatement[];
}

const groupKey = (account: string, emailId: string, recipient: string) =>
  `${account}\u0000${emailId}\u0000${recipient}`;
const clickKey = (occurredAt: number, id: string) => `${occurredAt}\u0000${id}`;

interface Group {
  account_id: string;
  email_id: string;
  recipient: string;
  from: number;
  to: number;
  arriving: { click: BurstClick; item: EventMessage }[];
  stored: { click: BurstClick; item: StoredClickRow }[];
  marked: BurstClick[];
}

export async function findClickBursts(db: D1Database, events: EventMessage[]): Promise<ClickBursts> {
  const groups = new Map<string, Group>();
  for (const message of events) {
    const e = message.event;
    if (e.type !== "email.clicked") continue;
    const key = groupKey(e.account_id, e.email_id, e.recipient);
    let group = groups.get(key);
    if (!group) {
      group = {
        account_id: e.account_id,
        email_id: e.email_id,
        recipient: e.recipient,
        from: e.occurred_at,
        to: e.occurred_at,
        arriving: [],
        stored: [],
        marked: [],
      };
      groups.set(key, group);
    }
    group.from = Math.min(group.from, e.occurred_at);
    group.to = Math.max(group.to, e.occurred_at);
    group.arriving.push({
      item: message,
      click: {
        key: clickKey(e.occurred_at, e.id),
        at: e.occurred_at,
        network: message.network ?? null,
        prefix: prefixOf(e.tracking?.ip_address),
        link: linkOf(e.tracking?.url, e.tracking?.link_name),
      },
    });
  }
  if (groups.size === 0) return { kept: events, dropped: [], removed: [], statements: [] };

  const windows = JSON.stringify(
    [...groups.values()].map((g) => ({
      account_id: g.account_id,
      email_id: g.email_id,
      recipient: g.recipient,
      from: g.from - BURST_LOOKAROUND_MS,
      to: g.to + BURST_LOOKAROUND_MS,
    })),
  );
  const [stored, marks] = await db.batch([
    db.prepare(STORED_CLICKS).bind(windows),
    db.prepare(BURST_MARKS).bind(windows),
  ]);
  for (const row of (stored?.results ?? []) as (StoredClickRow & {
    tracking_url: string | null;
    tracking_link_name: string | null;
    tracking_ip: string | null;
  })[]) {
    const group = groups.get(groupKey(row.account_id, row.email_id, row.recipient));
    if (!group) continue;
    const { tracking_url, tracking_link_name, tracking_ip, ...item } = row;
    group.stored.push({
      item,
      click: {
        key: clickKey(row.occurred_at, row.id),
        at: row.occurred_at,
        network: row.network,
        prefix: prefixOf(tracking_ip),
        link: linkOf(tracking_url, tracking_link_name),
      },
    });
  }
  for (const row of (marks?.results ?? []) as MarkRow[]) {
    groups.get(groupKey(row.account_id, row.email_id, row.recipient))?.marked.push({
      key: clickKey(row.occurred_at, row.id),
      at: row.occurred_at,
      network: row.network,
      link: row.link,
    });
  }

  const dropped = new Set<EventMessage>();
  const removed: StoredClickRow[] = [];
  const newMarks: MarkRow[] = [];
  for (const group of groups.values()) {
    const plan = planBursts(group);
    for (const message of plan.drop) dropped.add(message);
    removed.push(...plan.remove);
    for (const click of plan.mark) {
      const [occurredAt, id] = click.key.split("\u0000") as [string, string];
      newMarks.push({
        account_id: group.account_id,
        email_id: group.email_id,
        recipient: group.recipient,
        occurred_at: Number(occurredAt),
        id,
        network: click.network,
        link: click.link,
      });
    }
  }

  // First in the transaction: what was read must still hold (see GUARD).
  const storedRows = (stored?.results ?? []) as { occurred_at: number }[];
  const markRows = (marks?.results ?? []) as { occurred_at: number }[];
  // An insert or a delete changes the count; the sum (of each time modulo 1,000 s, so that it stays an
  // exact integer however many rows there are) catches one row replaced by another.
  const sum = (rows: { occurred_at: number }[]) =>
    rows.reduce((total, r) => total + (r.occurred_at % 1_000_000), 0);
  const statements: D1PreparedStatement[] = [
    db.prepare(GUARD).bind(windows, storedRows.length, sum(storedRows), markRows.length, sum(markRows)),
  ];
  if (removed.length > 0) {
    const keys = removed.map((r) => ({ account_id: r.account_id, occurred_at: r.occurred_at, id: r.id }));
    statements.push(db.prepare(DELETE_CLICKS).bind(JSON.stringify(keys)));
  }
  if (newMarks.length > 0) statements.push(db.prepare(INSERT_MARKS).bind(JSON.stringify(newMarks)));
  if (dropped.size > 0 || removed.length > 0) {
    log("info", "scanner burst clicks not recorded", {
      dropped: dropped.size,
      removed: removed.length,
      recipients: new Set(newMarks.map((m) => groupKey(m.account_id, m.email_id, m.recipient))).size,
    });
  }
  return {
    kept: dropped.size === 0 ? events : events.filter((m) => !dropped.has(m)),
    dropped: [...dropped],
    removed,
    statements,
  };
}

/**
 * A removed click as the queue record it was written from (SPEC §8 field names, `occurred_at` in
 * epoch ms), for code that takes event records: a metrics reversal of what the click counted.
 */
export function storedClickRecord(row: StoredClickRow): EventRecord {
  return {
    id: row.id,
    account_id: row.account_id,
    type: row.type as EventRecord["type"],
    occurred_at: row.occurred_at,
    email_id: row.email_id,
    message_id: row.message_id,
    from: row.from_address,
    from_domain: row.from_domain,
    recipient: row.recipient,
    subject: row.subject,
    topic: row.topic,
    campaign: row.campaign,
    template_id: row.template_id,
    tags: JSON.parse(row.tags) as string[],
    smtp_code: row.smtp_code,
    smtp_response: row.smtp_response,
    bounce_type: row.bounce_type as EventRecord["bounce_type"],
    bounce_classification: row.bounce_classification,
    complaint_type: row.complaint_type,
    attempt: row.attempt,
    tracking: row.tracking === null ? null : (JSON.parse(row.tracking) as Tracking),
  };
}

interface MarkRow {
  account_id: string;
  email_id: string;
  recipient: string;
  occurred_at: number;
  id: string;
  network: string | null;
  link: string;
}

/** Deletes dropped-burst marks older than BURST_MARK_RETENTION_MS, in bounded chunks. */
export async function purgeBurstMarks(
  db: D1Database,
  now: number,
  options: { chunk?: number; maxChunks?: number } = {},
): Promise<{ deleted: number }> {
  const chunk = options.chunk ?? 1_000;
  const maxChunks = options.maxChunks ?? 20;
  let deleted = 0;
  for (let i = 0; i < maxChunks; i += 1) {
    const result = await db
      .prepare(PURGE_MARKS)
      .bind(now - BURST_MARK_RETENTION_MS, chunk)
      .run();
    const changes = result.meta.changes ?? 0;
    deleted += changes;
    if (changes < chunk) break;
  }
  return { deleted };
}

const w = (field: string) => `json_extract(g.value, '$.${field}')`;

/** One email's clicks within the window, through the email index (a few rows per recipient). */
const STORED_CLICKS = `
SELECT e.*, json_extract(e.tracking, '$.url') AS tracking_url,
       json_extract(e.tracking, '$.link_name') AS tracking_link_name,
       json_extract(e.tracking, '$.ip_address') AS tracking_ip
FROM json_each(?1) AS g
JOIN events AS e INDEXED BY events_email_idx
  ON e.account_id = ${w("account_id")} AND e.email_id = ${w("email_id")}
 AND e.occurred_at BETWEEN ${w("from")} AND ${w("to")}
WHERE e.type = 'email.clicked' AND e.recipient = ${w("recipient")}`;

const BURST_MARKS = `
SELECT b.* FROM json_each(?1) AS g
JOIN click_bursts AS b
  ON b.account_id = ${w("account_id")} AND b.email_id = ${w("email_id")} AND b.recipient = ${w("recipient")}
 AND b.occurred_at BETWEEN ${w("from")} AND ${w("to")}`;

/**
 * Optimistic concurrency. The clicks and marks were read before the consumer's transaction; if
 * another consumer invocation changed them since (Queues runs batches concurrently when a backlog
 * builds), a decision made on the old state could keep part of a burst that the other batch dropped.
 * So the transaction starts by counting them again, and fails (json() of malformed text raises an
 * error, which rolls the whole D1 batch back) when anything changed: the consumer retries the batch
 * with backoff and decides again on the new state. D1 runs transactions one at a time, so the
 * check and the writes see the same state.
 */
const GUARD = `
SELECT CASE
  WHEN (SELECT count(*) = ?2 AND coalesce(sum(e.occurred_at % 1000000), 0) = ?3
          FROM json_each(?1) AS g
          JOIN events AS e INDEXED BY events_email_idx
            ON e.account_id = ${w("account_id")} AND e.email_id = ${w("email_id")}
           AND e.occurred_at BETWEEN ${w("from")} AND ${w("to")}
         WHERE e.type = 'email.clicked' AND e.recipient = ${w("recipient")})
   AND (SELECT count(*) = ?4 AND coalesce(sum(b.occurred_at % 1000000), 0) = ?5
          FROM json_each(?1) AS g
          JOIN click_bursts AS b
            ON b.account_id = ${w("account_id")} AND b.email_id = ${w("email_id")} AND b.recipient = ${w("recipient")}
           AND b.occurred_at BETWEEN ${w("from")} AND ${w("to")})
  THEN 1
  ELSE json('burst detection: clicks changed since they were read, retry the batch')
END AS unchanged`;

const DELETE_CLICKS = `
DELETE FROM events
WHERE (account_id, occurred_at, id) IN (
  SELECT json_extract(value, '$.account_id'), json_extract(value, '$.occurred_at'), json_extract(value, '$.id')
  FROM json_each(?1))
  AND type = 'email.clicked'`;

const m = (field: string) => `json_extract(value, '$.${field}')`;
const INSERT_MARKS = `
INSERT INTO click_bursts (account_id, email_id, recipient, occurred_at, id, network, link)
SELECT ${["account_id", "email_id", "recipient", "occurred_at", "id", "network", "link"].map(m).join(", ")}
FROM json_each(?1) WHERE true
ON CONFLICT DO NOTHING`;

const PURGE_MARKS = `
DELETE FROM click_bursts
WHERE (account_id, email_id, recipient, occurred_at, id) IN (
  SELECT account_id, email_id, recipient, occurred_at, id FROM click_bursts INDEXED BY click_bursts_time_idx
  WHERE occurred_at < ?1 LIMIT ?2)`;
