import { effectivePlan } from "../config";
import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { type AccountGroup, budgetedWalk, PER_EMAIL_TABLES, staleRegistrationsWalk } from "../store";
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

export const REGISTRATION_PURGE_CURSOR_KEY = "meta:purge-registrations";

interface TableCursor {
  account: string;
  /** The last key the walk examined in `account`; null: the account's start. */
  after: string[] | null;
  /** The walk finished `account` (it resumes after it). */
  finished?: true;
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
  const share = Math.max(3, Math.floor(budget.statements / PER_EMAIL_TABLES.length));
  const cursors =
    (await readCursor<Record<string, TableCursor | null>>(env, REGISTRATION_PURGE_CURSOR_KEY)) ?? {};
  const result: RegistrationPurgeResult = { deleted: {}, complete: [] };

  for (const [i, table] of PER_EMAIL_TABLES.entries()) {
    const deadline = started + (budget.timeMs * (i + 1)) / PER_EMAIL_TABLES.length;
    const cursor = cursors[table.name] ?? null;
    let statements = share;
    let start: Parameters<typeof budgetedWalk<AccountGroup, string[]>>[1] = { after: "" };
    if (cursor?.finished) start = { after: cursor.account };
    else if (cursor) {
      // Resumed inside an account: its plan decides the cutoff.
      statements -= 1;
      const row = await env.DB.prepare("SELECT plan FROM accounts WHERE id = ?")
        .bind(cursor.account)
        .first<{ plan: string }>();
      start = { after: "", group: { key: cursor.account, plan: row?.plan ?? null }, from: cursor.after };
    }
    const walk = staleRegistrationsWalk(
      env.DB,
      table,
      (account) =>
        now - (effectivePlan(env, account.plan).retention_days + REGISTRATION_MARGIN_DAYS) * DAY_MS,
    );
    const run = await budgetedWalk(walk, start, {
      chunk: budget.chunk,
      rows: Number.POSITIVE_INFINITY,
      statements,
      timeMs: deadline - Date.now(),
    });
    cursors[table.name] = run.complete
      ? null
      : run.at
        ? { account: run.at.group.key, after: run.at.from }
        : { account: run.after, after: null, finished: true };
    result.deleted[table.name] = run.deleted;
    if (run.complete) result.complete.push(table.name);
  }
  await writeCursor(env, REGISTRATION_PURGE_CURSOR_KEY, cursors);
  return result;
}
