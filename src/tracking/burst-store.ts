/**
 * Burst detection in the events consumer (SPEC §5): the D1 side of src/tracking/bursts.ts, through
 * the event store's click-burst statements (src/store/click-bursts.ts).
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
import type { EventRecord } from "../events/record";
import { log } from "../lib/log";
import type { EventMessage } from "../pipeline/messages";
import {
  budgetedWalk,
  clickWindowsGuard,
  deleteClicks,
  expiredBurstMarksWalk,
  insertBurstMarks,
  type MarkRow,
  readClickWindows,
  recordOfRow,
  type StoredClickRow,
} from "../store";
import {
  BURST_LOOKAROUND_MS,
  BURST_MARK_RETENTION_MS,
  type BurstClick,
  linkOf,
  planBursts,
  prefixOf,
} from "./bursts";

export type { StoredClickRow } from "../store";

export interface ClickBursts {
  /** The batch's events to write: every non-click, and every click that is not part of a burst. */
  kept: EventMessage[];
  /** Arriving clicks dropped as part of a burst (never written). */
  dropped: EventMessage[];
  /** Stored clicks that the statements delete (written by an earlier batch, part of a burst now). */
  removed: StoredClickRow[];
  /** Run these in the consumer's transaction: delete `removed`, remember the burst's clicks. */
  statements: D1PreparedStatement[];
  /** The arriving clicks of each group (recipient of one message), by the index its guard's conflict names. */
  groupMessages: EventMessage[][];
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
  if (groups.size === 0) return { kept: events, dropped: [], removed: [], statements: [], groupMessages: [] };

  const windows = JSON.stringify(
    [...groups.values()].map((g) => ({
      account_id: g.account_id,
      email_id: g.email_id,
      recipient: g.recipient,
      from: g.from - BURST_LOOKAROUND_MS,
      to: g.to + BURST_LOOKAROUND_MS,
    })),
  );
  const [stored, marks] = await readClickWindows(db, windows);
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

  // First in the transaction: what was read must still hold (see GUARD), one guard per group, so
  // that a conflict names the group to retry and the rest of the batch is written (SPEC §18).
  // An insert or a delete changes the count; the sum (of each time modulo 1,000 s, so that it stays an
  // exact integer however many rows there are) catches one row replaced by another.
  const sum = (rows: { occurred_at: number }[]) =>
    rows.reduce((total, r) => total + (r.occurred_at % 1_000_000), 0);
  const statements: D1PreparedStatement[] = [];
  const groupMessages: EventMessage[][] = [];
  for (const [i, group] of [...groups.values()].entries()) {
    const window = JSON.stringify([
      {
        account_id: group.account_id,
        email_id: group.email_id,
        recipient: group.recipient,
        from: group.from - BURST_LOOKAROUND_MS,
        to: group.to + BURST_LOOKAROUND_MS,
      },
    ]);
    const storedRows = group.stored.map((s) => s.item);
    statements.push(
      clickWindowsGuard(
        db,
        window,
        storedRows.length,
        sum(storedRows),
        group.marked.length,
        group.marked.reduce((total, m) => total + (m.at % 1_000_000), 0),
        i,
      ),
    );
    groupMessages.push(group.arriving.map((a) => a.item));
  }
  if (removed.length > 0) statements.push(deleteClicks(db, removed));
  if (newMarks.length > 0) statements.push(insertBurstMarks(db, newMarks));
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
    groupMessages,
  };
}

/**
 * A removed click as the queue record it was written from (SPEC §8 field names, `occurred_at` in
 * epoch ms), for code that takes event records: a metrics reversal of what the click counted.
 */
export function storedClickRecord(row: StoredClickRow): EventRecord {
  return recordOfRow(row);
}

/** Deletes dropped-burst marks older than BURST_MARK_RETENTION_MS, in bounded chunks. */
export async function purgeBurstMarks(
  db: D1Database,
  now: number,
  options: { chunk?: number; maxChunks?: number } = {},
): Promise<{ deleted: number }> {
  const run = await budgetedWalk(
    expiredBurstMarksWalk(db, now - BURST_MARK_RETENTION_MS),
    { after: "" },
    {
      chunk: options.chunk ?? 1_000,
      rows: Number.POSITIVE_INFINITY,
      // The walk's one group costs no statement of its own.
      statements: (options.maxChunks ?? 20) + 1,
      timeMs: Number.POSITIVE_INFINITY,
    },
  );
  return { deleted: run.deleted };
}
