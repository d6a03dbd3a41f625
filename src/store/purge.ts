import {
  DAY_DOMAINS_ROLLUP_KEY_COLUMNS,
  DAY_ROLLUP_KEY_COLUMNS,
  HOUR_ROLLUP_KEY_COLUMNS,
  LINK_ROLLUP_KEY_COLUMNS,
  ROLLUP_KEY_COLUMNS,
} from "../db/metrics";

/**
 * Every purge of a table that grows with mail is one budgeted walk (`budgetedWalk`) given the
 * table's statements: the next group of rows (an account, an endpoint) found by an index seek after
 * the last one, so that no statement scans a table, and a bounded step that deletes some of the
 * group's expired rows and says where the group continues. A run stops at its budget (statements,
 * rows, time) at a statement boundary and says where to resume; the callers keep that position in
 * KV (retention/task-cursor.ts) and decide what expires (plan retention, 400 days, two days).
 */

export interface PurgeBudget {
  /** Rows one statement removes (or examines) at most. */
  chunk: number;
  /** Rows one run removes at most. */
  rows: number;
  /** D1 statements one run issues at most (Workers bound the queries of one invocation). */
  statements: number;
  /** Wall-clock milliseconds one run may take before it stops at the next statement boundary. */
  timeMs: number;
}

export interface PurgeWalk<G extends { key: string }, P> {
  /** The first group whose key is after `after` ('' for the first of all), or null when none is left. One statement. */
  next(after: string): Promise<G | null>;
  /**
   * One bounded step on `group` from `from` (null: the group's start), deleting at most `limit` rows:
   * what it deleted, the statements it issued, and where the group continues (null: it is done).
   */
  step(
    group: G,
    from: P | null,
    limit: number,
  ): Promise<{ deleted: number; statements: number; next: P | null }>;
}

export interface WalkResult<G, P> {
  /** Groups finished this run. */
  groups: number;
  deleted: number;
  /** True when the walk went past the last group. */
  complete: boolean;
  /** The key of the last group finished (the next run may seek after it). */
  after: string;
  /** The group the budget stopped inside, and where in it; null when it stopped between groups. */
  at: { group: G; from: P | null } | null;
}

/** The one purge loop: groups in key order, each in bounded steps, within one budget. */
export async function budgetedWalk<G extends { key: string }, P>(
  walk: PurgeWalk<G, P>,
  start: { after: string; group?: G; from?: P | null },
  budget: PurgeBudget,
): Promise<WalkResult<G, P>> {
  const started = Date.now();
  let statements = 0;
  let deleted = 0;
  let groups = 0;
  const exhausted = () =>
    statements >= budget.statements || deleted >= budget.rows || Date.now() - started >= budget.timeMs;
  let after = start.after;
  let group: G | null = start.group ?? null;
  let from: P | null = start.from ?? null;
  while (!exhausted()) {
    if (group === null) {
      statements += 1;
      group = await walk.next(after);
      if (!group) return { groups, deleted, complete: true, after, at: null };
      from = null;
    }
    for (;;) {
      if (exhausted()) return { groups, deleted, complete: false, after, at: { group, from } };
      const step = await walk.step(group, from, Math.min(budget.chunk, budget.rows - deleted));
      statements += step.statements;
      deleted += step.deleted;
      if (step.next === null) break;
      from = step.next;
    }
    groups += 1;
    after = group.key;
    group = null;
  }
  return { groups, deleted, complete: false, after, at: group ? { group, from } : null };
}

/**
 * The walk of a table whose groups' expired rows are a range of its primary key: `next` seeks the
 * next group (bound to the last key), and each step deletes the oldest `limit` rows of the group
 * below its cutoff (`group = ?1 AND time < ?2`, through the key), going on while chunks come back full.
 */
function rangeDeleteWalk<G extends { key: string }>(
  db: D1Database,
  table: { name: string; key: readonly string[]; group: string; time: string },
  next: string,
  cutoff: (group: G) => number,
): PurgeWalk<G, true> {
  const key = table.key.join(", ");
  const remove = `
DELETE FROM ${table.name} WHERE (${key}) IN (
  SELECT ${key} FROM ${table.name}
  WHERE ${table.group} = ?1 AND ${table.time} < ?2 ORDER BY ${table.time} LIMIT ?3)`;
  return {
    next: (after) => db.prepare(next).bind(after).first<G>(),
    step: async (group, _from, limit) => {
      const { meta } = await db.prepare(remove).bind(group.key, cutoff(group), limit).run();
      return { deleted: meta.changes, statements: 1, next: meta.changes < limit ? null : (true as const) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// events: an account's events older than its plan's retention, oldest first through the primary key

export interface AccountGroup {
  key: string;
  plan: string | null;
}

const accountAfter = (table: string) => `
SELECT t.account_id AS key, a.plan AS plan
FROM (SELECT account_id FROM ${table} WHERE account_id > ?1 ORDER BY account_id LIMIT 1) AS t
LEFT JOIN accounts AS a ON a.id = t.account_id`;

const nextAccountOf = (db: D1Database, table: string) => (after: string) =>
  db.prepare(accountAfter(table)).bind(after).first<AccountGroup>();

/** Accounts with events; each step deletes the group's events older than `cutoff(group)`. */
export function expiredEventsWalk(
  db: D1Database,
  cutoff: (group: AccountGroup) => number,
): PurgeWalk<AccountGroup, true> {
  const table = {
    name: "events",
    key: ["account_id", "occurred_at", "id"],
    group: "account_id",
    time: "occurred_at",
  };
  return rangeDeleteWalk(db, table, accountAfter("events"), cutoff);
}

// ---------------------------------------------------------------------------------------------
// webhook deliveries: an endpoint's rows whose event expired, or every row of a deleted endpoint

export interface EndpointGroup {
  key: string;
  /** 1 while the endpoint exists. */
  live: number;
  plan: string | null;
}

const NEXT_ENDPOINT = `
SELECT d.endpoint_id AS key, (w.id IS NOT NULL) AS live, a.plan AS plan
FROM (SELECT endpoint_id, account_id FROM webhook_deliveries WHERE endpoint_id > ?1 ORDER BY endpoint_id LIMIT 1) AS d
LEFT JOIN webhook_endpoints AS w ON w.account_id = d.account_id AND w.id = d.endpoint_id
LEFT JOIN accounts AS a ON a.id = d.account_id`;

export function expiredDeliveriesWalk(
  db: D1Database,
  cutoff: (group: EndpointGroup) => number,
): PurgeWalk<EndpointGroup, true> {
  const table = {
    name: "webhook_deliveries",
    key: ["endpoint_id", "event_occurred_at", "event_id"],
    group: "endpoint_id",
    time: "event_occurred_at",
  };
  return rangeDeleteWalk(db, table, NEXT_ENDPOINT, cutoff);
}

// ---------------------------------------------------------------------------------------------
// metric rollups: an account's buckets before the cutoff, through the primary key

export function expiredRollupsWalk(db: D1Database, cutoff: number): PurgeWalk<{ key: string }, true> {
  const next =
    "SELECT account_id AS key FROM metric_rollups WHERE account_id > ?1 ORDER BY account_id LIMIT 1";
  // An account's quarter-hour rollups, then its daily, daily-domain, hourly-total and link rollups (each of their rows has
  // quarter-hour rows of the same account, so walking metric_rollups' accounts finds them all).
  const tables = [
    { name: "metric_rollups", key: ROLLUP_KEY_COLUMNS, group: "account_id", time: "bucket" },
    { name: "metric_rollups_day", key: DAY_ROLLUP_KEY_COLUMNS, group: "account_id", time: "bucket" },
    {
      name: "metric_rollups_day_domains",
      key: DAY_DOMAINS_ROLLUP_KEY_COLUMNS,
      group: "account_id",
      time: "bucket",
    },
    { name: "metric_rollups_hour", key: HOUR_ROLLUP_KEY_COLUMNS, group: "account_id", time: "bucket" },
    { name: "rollup_folds", key: ["account_id", "day"], group: "account_id", time: "day" },
    { name: "link_rollups", key: LINK_ROLLUP_KEY_COLUMNS, group: "account_id", time: "day" },
  ].map((table) => rangeDeleteWalk<{ key: string }>(db, table, next, () => cutoff));
  const first = tables[0] as PurgeWalk<{ key: string }, true>;
  return {
    next: first.next,
    step: async (group, _from, limit) => {
      let deleted = 0;
      let statements = 0;
      for (const walk of tables) {
        const r = await walk.step(group, null, limit - deleted);
        deleted += r.deleted;
        statements += r.statements;
        if (r.next !== null) return { deleted, statements, next: true as const };
      }
      return { deleted, statements, next: null };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// click-burst marks: one group (the whole table), oldest first through its time index

const DELETE_MARKS = `
DELETE FROM click_bursts
WHERE (account_id, email_id, recipient, occurred_at, id) IN (
  SELECT account_id, email_id, recipient, occurred_at, id FROM click_bursts INDEXED BY click_bursts_time_idx
  WHERE occurred_at < ?1 LIMIT ?2)`;

export function expiredBurstMarksWalk(db: D1Database, cutoff: number): PurgeWalk<{ key: string }, true> {
  return {
    // Not a statement: the table is one group, walked through its time index.
    next: async (after) => (after === "" ? { key: "click_bursts" } : null),
    step: async (_group, _from, limit) => {
      const { meta } = await db.prepare(DELETE_MARKS).bind(cutoff, limit).run();
      return { deleted: meta.changes, statements: 1, next: meta.changes < limit ? null : (true as const) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// registrations and the Message-ID map: rows that outlived their email's events

/** A per-email table without a time index: walked in primary-key order within each account. */
export interface PerEmailTable {
  name: "messages" | "message_ids";
  /** Primary key after account_id: the walk's order and cursor. */
  key: string[];
  time: string;
}

export const PER_EMAIL_TABLES: PerEmailTable[] = [
  { name: "messages", key: ["email_id"], time: "registered_at" },
  { name: "message_ids", key: ["message_id", "email_id"], time: "first_seen_at" },
];

/**
 * Walks `table` account by account, `chunk` rows a step (two statements in one batch: the window's
 * last key, and the deletion of its rows registered before `cutoff(group)` whose email has no event
 * left); `from` is the last key examined.
 */
export function staleRegistrationsWalk(
  db: D1Database,
  table: PerEmailTable,
  cutoff: (group: AccountGroup) => number,
): PurgeWalk<AccountGroup, string[]> {
  const keyList = table.key.join(", ");
  const rowKey = `(${keyList})`;
  const params = table.key.map((_, i) => `?${i + 4}`).join(", ");
  // ?1 account, ?2 chunk, ?3 cutoff, ?4… the last key examined (absent on an account's first chunk:
  // a separate statement, as an OR around the range would cost the index seek).
  const window = (resume: boolean) => `SELECT ${keyList} FROM ${table.name}
      WHERE account_id = ?1 ${resume ? `AND ${rowKey} > (${params})` : ""} ORDER BY ${keyList} LIMIT ?2`;
  const lastOfWindow = (resume: boolean) =>
    `SELECT ${keyList}, ?3 AS cutoff FROM (${window(resume)}) ORDER BY ${table.key.map((k) => `${k} DESC`).join(", ")} LIMIT 1`;
  const purgeWindow = (resume: boolean) => `DELETE FROM ${table.name}
      WHERE account_id = ?1 AND ${rowKey} IN (${window(resume)})
        AND ${table.time} < ?3
        AND NOT EXISTS (SELECT 1 FROM events INDEXED BY events_email_idx
                         WHERE events.account_id = ?1 AND events.email_id = ${table.name}.email_id)`;
  return {
    next: nextAccountOf(db, table.name),
    step: async (group, from, limit) => {
      const resume = from !== null;
      const bind: (string | number)[] = [group.key, limit, cutoff(group), ...(from ?? [])];
      const [last, removed] = await db.batch<Record<string, string>>([
        db.prepare(lastOfWindow(resume)).bind(...bind),
        db.prepare(purgeWindow(resume)).bind(...bind),
      ]);
      const end = last?.results[0];
      return {
        deleted: removed?.meta.changes ?? 0,
        statements: 2,
        next: end ? table.key.map((k) => String(end[k])) : null,
      };
    },
  };
}
