import { effectivePlan } from "../config";
import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { readCursor, writeCursor } from "./task-cursor";

/**
 * The second half of the retention purge (SPEC §12): per-email rows that outlived their events.
 * - `messages` (registrations): a row registered more than retention + REGISTRATION_MARGIN_DAYS ago
 *   whose email has no event left.
 * - `message_ids` (the Message-ID map): the same rule on its first_seen_at.
 * The margin keeps a registration for events that arrive late (an open weeks after the send still
 * gets its campaign and tags) and for the events purge to finish first.
 *
 * Neither table has a time index (each would be one more row written per email), so the purge walks
 * each account's rows in primary-key order, a chunk per statement, with a cursor kept in KV, and
 * deletes what qualifies in that chunk. Reads are cheap next to writes: a full walk reads every
 * registration once (1,000,000 registrations = 1,000,000 rows read, about $0.001 at D1's price),
 * and each candidate costs one probe of events_email_idx. A walk resumes where the last run stopped
 * and starts over when it reaches the end, so every row is visited again.
 */

export const REGISTRATION_MARGIN_DAYS = 7;

export interface RegistrationPurgeBudget {
  /** Rows one statement examines at most. */
  chunk: number;
  /** D1 statements one run issues at most. */
  statements: number;
  timeMs: number;
}

export const DEFAULT_REGISTRATION_PURGE_BUDGET: RegistrationPurgeBudget = {
  chunk: 1000,
  statements: 300,
  timeMs: 30_000,
};

interface PerEmailTable {
  name: string;
  /** Primary key after account_id: the walk's order and cursor. */
  key: string[];
  time: string;
}

const TABLES: PerEmailTable[] = [
  { name: "messages", key: ["email_id"], time: "registered_at" },
  { name: "message_ids", key: ["message_id", "email_id"], time: "first_seen_at" },
];

export const REGISTRATION_PURGE_CURSOR_KEY = "meta:purge-registrations";

interface TableCursor {
  account: string;
  /** The last key the walk examined in `account`; null: the account's start. */
  after: string[] | null;
}

export interface RegistrationPurgeResult {
  deleted: Record<string, number>;
  /** Tables whose walk reached the last account this run. */
  complete: string[];
}

export async function purgeStaleRegistrations(
  env: Env,
  now: number,
  budget: RegistrationPurgeBudget = DEFAULT_REGISTRATION_PURGE_BUDGET,
): Promise<RegistrationPurgeResult> {
  const started = Date.now();
  // Each table gets its share of the run, so a long walk of one never starves the other.
  const share = Math.max(3, Math.floor(budget.statements / TABLES.length));
  const cursors =
    (await readCursor<Record<string, TableCursor | null>>(env, REGISTRATION_PURGE_CURSOR_KEY)) ?? {};
  const result: RegistrationPurgeResult = { deleted: {}, complete: [] };

  for (const [i, table] of TABLES.entries()) {
    let statements = 0;
    const deadline = started + (budget.timeMs * (i + 1)) / TABLES.length;
    const exhausted = () => statements >= share || Date.now() >= deadline;
    let cursor = cursors[table.name] ?? null;
    let deleted = 0;
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
    const nextAccount = `SELECT t.account_id AS account_id, a.plan AS plan
      FROM (SELECT account_id FROM ${table.name} WHERE account_id > ?1 ORDER BY account_id LIMIT 1) AS t
      LEFT JOIN accounts AS a ON a.id = t.account_id`;

    const seek = async (afterAccount: string) => {
      statements += 1;
      return env.DB.prepare(nextAccount)
        .bind(afterAccount)
        .first<{ account_id: string; plan: string | null }>();
    };
    let complete = false;
    let plan: string | null = null;
    if (cursor !== null) {
      statements += 1;
      const row = await env.DB.prepare("SELECT plan FROM accounts WHERE id = ?")
        .bind(cursor.account)
        .first<{ plan: string }>();
      plan = row?.plan ?? null;
    }
    while (!exhausted()) {
      if (cursor === null) {
        const next = await seek("");
        if (!next) {
          complete = true;
          break;
        }
        cursor = { account: next.account_id, after: null };
        plan = next.plan;
      }
      const days = effectivePlan(env, plan).retention_days + REGISTRATION_MARGIN_DAYS;
      const cutoff = now - days * DAY_MS;
      const resume = cursor.after !== null;
      const bind: (string | number)[] = [cursor.account, budget.chunk, cutoff, ...(cursor.after ?? [])];
      statements += 2;
      const [last, removed] = await env.DB.batch<Record<string, string>>([
        env.DB.prepare(lastOfWindow(resume)).bind(...bind),
        env.DB.prepare(purgeWindow(resume)).bind(...bind),
      ]);
      deleted += removed?.meta.changes ?? 0;
      const end: Record<string, string> | undefined = last?.results[0];
      if (end) {
        cursor = { account: cursor.account, after: table.key.map((k) => String(end[k])) };
        continue;
      }
      // The account is done: on to the next one, or the walk is complete.
      const next = await seek(cursor.account);
      if (!next) {
        complete = true;
        cursor = null;
        break;
      }
      cursor = { account: next.account_id, after: null };
      plan = next.plan;
    }
    cursors[table.name] = complete ? null : cursor;
    result.deleted[table.name] = deleted;
    if (complete) result.complete.push(table.name);
  }
  await writeCursor(env, REGISTRATION_PURGE_CURSOR_KEY, cursors);
  return result;
}
