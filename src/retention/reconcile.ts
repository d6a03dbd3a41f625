import type { Env } from "../env";
import { log } from "../lib/log";
import {
  type AddressRef,
  fitsKv,
  isLive,
  MIRROR_PREFIX,
  type MirrorMetadata,
  mirrorEntryOf,
  mirrorFingerprint,
  mirrorKey,
  parseMirrorKey,
  readEntries,
  syncMirror,
} from "../suppressions/mirror";
import { readCursor, writeCursor } from "./task-cursor";

/**
 * The mirror reconcile (SPEC §10, §12): no suppression in D1 stays missing from KV for longer than one
 * reconcile cycle, however many entries there are. Each run does three things, within one budget:
 *
 * 1. The journal. Every change to `suppressions` writes a `mirror_pending` row in its own transaction
 *    and the writer clears it once KV holds what D1 holds; a row still there after `pendingAgeMs` is a
 *    failed or interrupted mirror write, and it is repaired now, oldest addresses first. This is the
 *    path that catches real failures, whatever the size of the list, on the next run.
 * 2. The sweep, a full comparison of D1 with KV that catches what no writer knew about (a key deleted
 *    or changed behind the mirror's back). It walks D1's accounts in order and, for each, merges D1's
 *    addresses (primary-key order) with KV's keys under the account's prefix (KV lists keys in the
 *    same byte order), a thousand keys per list call. Every mirror value carries its fingerprint as
 *    KV metadata, which `list` returns, so comparing a thousand addresses costs one KV list and one
 *    D1 read of about a thousand rows, and no KV reads. A drifted address is rewritten and a key
 *    without D1 rows is deleted, through syncMirror (which re-reads D1 and verifies).
 * 3. Orphans of accounts with no D1 rows at all: a walk of every `sup:` key, a page per run or more,
 *    deleting keys whose address D1 does not hold (and keys this layout never writes).
 *
 * Capacity, with the default budget (900 KV operations: Workers allow 1,000 per invocation, and a
 * list of 1,000 keys is one; 4 minutes, under the 5-minute cron interval): the sweep compares up to
 * ~850,000 addresses per run (one list call each 1,000), so at 1,000,000 entries a full pass takes 2
 * runs, 10 minutes with the 5-minute cron. Measured locally: ~7,000 addresses compared per second
 * (test/retention/mirror-convergence.test.ts), so 850,000 take ~2 minutes of the 4. The cycle this
 * promises is 15 minutes: a failed write is repaired by the next run (≤ 5 minutes, up to `pending`
 * addresses per run), and anything else by the next full pass (≤ 10 minutes).
 */

export interface ReconcileBudget {
  /** KV operations per run: list calls, puts and deletes (Workers allow 1,000 per invocation). */
  kvOps: number;
  /** D1 statements per run. */
  d1Queries: number;
  /** Journal rows repaired per run at most (one KV write each). */
  pending: number;
  /** Wall-clock milliseconds a run may take before it stops at the next step. */
  timeMs: number;
  /** Keys per KV list call (KV returns at most 1,000). */
  pageSize: number;
  /** Share of the run's list calls the global orphan walk may use. */
  orphanPages: number;
}

export const DEFAULT_RECONCILE_BUDGET: ReconcileBudget = {
  kvOps: 900,
  d1Queries: 900,
  pending: 600,
  timeMs: 240_000,
  pageSize: 1000,
  orphanPages: 20,
};

/** A journal row younger than this belongs to a write that may still be under way. */
export const PENDING_AGE_MS = 30_000;

export interface ReconcileResult {
  /** Journal rows repaired this run, and how many wait (and since when) after it. */
  pendingRepaired: number;
  pendingWaiting: number;
  pendingOldestAt: number | null;
  /** Addresses the sweep compared, and how many it rewrote or deleted. */
  addressesChecked: number;
  rewritten: number;
  /** Keys the orphan walk checked, and how many it deleted. */
  keysChecked: number;
  deleted: number;
  /** The sweep finished a full pass of D1 this run (the next run starts another). */
  d1Complete: boolean;
  /** The orphan walk reached the last key. */
  kvComplete: boolean;
}

export const RECONCILE_CURSOR_KEY = "meta:reconcile";

interface SweepPosition {
  /** The account being compared. */
  account: string;
  /** The last address compared in it. */
  after: string;
  /** KV's list cursor of the page that holds the next keys (null: the account's first page). */
  kv: string | null;
}

interface ReconcileCursor {
  sweep: SweepPosition | null;
  orphans: string | null;
}

class Meter {
  kv = 0;
  d1 = 0;
  private readonly started = Date.now();
  constructor(private readonly budget: ReconcileBudget) {}
  /** Whether a step costing about `kv` KV operations and `d1` statements still fits. */
  fits(kv: number, d1: number): boolean {
    return (
      this.kv + kv <= this.budget.kvOps &&
      this.d1 + d1 <= this.budget.d1Queries &&
      Date.now() - this.started < this.budget.timeMs
    );
  }
}

export async function reconcileMirror(
  env: Env,
  budget: ReconcileBudget = DEFAULT_RECONCILE_BUDGET,
  now = Date.now(),
): Promise<ReconcileResult> {
  const meter = new Meter(budget);
  const cursor = (await readCursor<ReconcileCursor>(env, RECONCILE_CURSOR_KEY)) ?? {
    sweep: null,
    orphans: null,
  };
  meter.kv += 1;
  const pending = await repairJournal(env, meter, budget, now);
  // The orphan walk gets its share first, so a large list cannot starve it.
  const orphans = await reconcileOrphans(env, meter, budget, cursor.orphans ?? null);
  const sweep = await sweepAccounts(env, meter, budget, cursor.sweep ?? null);
  await writeCursor(env, RECONCILE_CURSOR_KEY, {
    sweep: sweep.next,
    orphans: orphans.next,
  } satisfies ReconcileCursor);
  const backlog = await env.DB.prepare(
    "SELECT COUNT(*) AS n, MIN(since) AS oldest FROM mirror_pending",
  ).first<{
    n: number;
    oldest: number | null;
  }>();
  return {
    pendingRepaired: pending,
    pendingWaiting: backlog?.n ?? 0,
    pendingOldestAt: backlog?.oldest ?? null,
    addressesChecked: sweep.checked,
    rewritten: sweep.repaired,
    keysChecked: orphans.checked,
    deleted: orphans.repaired,
    d1Complete: sweep.complete,
    kvComplete: orphans.next === null,
  };
}

/** Step 1: every journal row older than PENDING_AGE_MS, up to the budget. */
async function repairJournal(env: Env, meter: Meter, budget: ReconcileBudget, now: number) {
  const room = Math.min(budget.pending, budget.kvOps - meter.kv - 1);
  if (room <= 0 || !meter.fits(0, 3)) return 0;
  meter.d1 += 1;
  const { results } = await env.DB.prepare(
    `SELECT account_id, email FROM mirror_pending WHERE since <= ?1 ORDER BY since LIMIT ?2`,
  )
    .bind(now - PENDING_AGE_MS, room)
    .all<{ account_id: string; email: string }>();
  if (results.length === 0) return 0;
  const refs = results.map((r) => ({ accountId: r.account_id, email: r.email }));
  meter.d1 += 2;
  meter.kv += refs.length;
  const failed = await syncMirror(env, refs);
  const repaired = refs.length - failed.length;
  log("warn", "suppression mirror journal repaired", { repaired, failed: failed.length });
  return repaired;
}

const NEXT_ACCOUNT = "SELECT account_id FROM suppressions WHERE account_id > ?1 ORDER BY account_id LIMIT 1";

/** Step 2: the sweep, from where the last run stopped; at most one full pass per run. */
async function sweepAccounts(env: Env, meter: Meter, budget: ReconcileBudget, start: SweepPosition | null) {
  let position = start;
  let checked = 0;
  let repaired = 0;
  let complete = false;
  // A step costs one list, two D1 statements, and a write per drifted address (reserve a few).
  while (meter.fits(1 + 20, 4)) {
    if (position === null || position.account === "") {
      meter.d1 += 1;
      const next = await env.DB.prepare(NEXT_ACCOUNT)
        .bind(position?.after ?? "")
        .first<{ account_id: string }>();
      if (!next) {
        complete = true;
        position = null;
        break;
      }
      position = { account: next.account_id, after: "", kv: null };
    }
    const step = await compareSlice(env, meter, budget, position);
    if (step.stalled) break; // no room left for repairs this run; the next run resumes here
    checked += step.checked;
    repaired += step.repaired;
    // An account done: the next step seeks the one after it (account "" with `after` = this account).
    position = step.next ?? { account: "", after: position.account, kv: null };
  }
  return { next: position, checked, repaired, complete };
}

interface SweepRow {
  email: string;
  topic: string;
  reason: string;
  suppressed_at: number;
  expires_at: number | null;
}

/** Rows read per D1 statement of the sweep: twice a list page, so a page's addresses usually fit. */
const sweepRows = (budget: ReconcileBudget) => 2 * budget.pageSize;

/**
 * Compares one KV list page of an account with D1's addresses in the same range. Returns the next
 * position in the account, or null when the account is done.
 */
async function compareSlice(env: Env, meter: Meter, budget: ReconcileBudget, at: SweepPosition) {
  const prefix = `${MIRROR_PREFIX}${encodeURIComponent(at.account)}:`;
  meter.kv += 1;
  const page = await env.SUPPRESSIONS.list<MirrorMetadata>({
    prefix,
    limit: budget.pageSize,
    ...(at.kv ? { cursor: at.kv } : {}),
  });
  const lastKey = page.keys[page.keys.length - 1];
  // The page covers addresses up to its last key; the account's last page covers the rest.
  const upper = page.list_complete || !lastKey ? null : lastKey.name.slice(prefix.length);
  meter.d1 += 1;
  const { results } = await env.DB.prepare(
    `SELECT email, topic, reason, suppressed_at, expires_at FROM suppressions
      WHERE account_id = ?1 AND email > ?2 ${upper === null ? "" : "AND email <= ?4"}
      ORDER BY email, topic LIMIT ?3`,
  )
    .bind(at.account, at.after, sweepRows(budget), ...(upper === null ? [] : [upper]))
    .all<SweepRow>();
  // A full read may have cut the last address's entries short: compare up to the one before it.
  let rows = results;
  let end = upper;
  let truncated = results.length === sweepRows(budget);
  if (truncated) {
    const lastEmail = results[results.length - 1]?.email ?? at.after;
    const kept = results.filter((r) => r.email !== lastEmail);
    rows = kept.length > 0 ? kept : results;
    end = rows[rows.length - 1]?.email ?? lastEmail;
  }
  const inRange = (email: string) => email > at.after && (end === null || email <= end);

  const expected = new Map<string, string>();
  const lists = new Map<string, ReturnType<typeof mirrorEntryOf>[]>();
  const now = Date.now();
  for (const row of rows) {
    // An expired entry (deleted by the next expiry run) is not in the mirror's value.
    if (!isLive({ expires_at: row.expires_at }, now)) continue;
    const list = lists.get(row.email) ?? [];
    list.push(mirrorEntryOf(row));
    lists.set(row.email, list);
  }
  for (const [email, list] of lists) expected.set(email, mirrorFingerprint(JSON.stringify(list)));

  const drifted: AddressRef[] = [];
  const listed = new Set<string>();
  for (const key of page.keys) {
    const email = key.name.slice(prefix.length);
    if (!inRange(email)) continue;
    listed.add(email);
    const want = expected.get(email);
    if (want === undefined || key.metadata?.h !== want) drifted.push({ accountId: at.account, email });
  }
  for (const email of expected.keys()) {
    if (!listed.has(email) && fitsKv(mirrorKey(at.account, email)))
      drifted.push({ accountId: at.account, email });
  }
  // Repairs cost a KV write each: past the run's room, compare up to the last address repaired and
  // leave the rest of the page to the next step (or run).
  drifted.sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
  const room = Math.max(0, budget.kvOps - meter.kv);
  if (drifted.length > room) {
    drifted.length = room;
    const lastRepaired = drifted.at(-1)?.email;
    if (lastRepaired === undefined) return { checked: 0, repaired: 0, next: at, stalled: true };
    truncated = true;
    end = lastRepaired;
  }
  let repaired = 0;
  if (drifted.length > 0) {
    meter.kv += drifted.length;
    meter.d1 += 2;
    const failed = await syncMirror(env, drifted);
    repaired = drifted.length - failed.length;
    log("warn", "suppression mirror drift repaired", { direction: "sweep", keys: repaired });
  }
  const checked = [...new Set([...listed, ...expected.keys()])].filter(inRange).length;
  let next: SweepPosition | null;
  if (truncated) next = { account: at.account, after: end ?? at.after, kv: at.kv };
  else if (page.list_complete) next = null;
  else next = { account: at.account, after: upper ?? at.after, kv: page.cursor };
  return { checked, repaired, next, stalled: false };
}

/**
 * Step 3: keys of accounts the sweep never visits (no D1 rows at all), and keys this layout never
 * writes. A page of keys costs one list and one D1 read of those addresses' rows.
 */
async function reconcileOrphans(env: Env, meter: Meter, budget: ReconcileBudget, start: string | null) {
  let cursor = start;
  let checked = 0;
  let repaired = 0;
  for (let pages = 0; pages < budget.orphanPages && meter.fits(1 + 20, 3); pages += 1) {
    // Every key of a page may need a delete: list no more keys than the run has operations left.
    const room = budget.kvOps - meter.kv - 1;
    meter.kv += 1;
    const page = await env.SUPPRESSIONS.list({
      prefix: MIRROR_PREFIX,
      limit: Math.min(budget.pageSize, room),
      ...(cursor ? { cursor } : {}),
    });
    const refs: AddressRef[] = [];
    const strays: string[] = [];
    for (const { name } of page.keys) {
      const ref = parseMirrorKey(name);
      if (ref && mirrorKey(ref.accountId, ref.email) === name) refs.push(ref);
      else strays.push(name);
    }
    meter.d1 += 1;
    const entries = await readEntries(env, refs);
    const orphans = refs.filter(
      (ref) => (entries.get(mirrorKey(ref.accountId, ref.email)) ?? []).length === 0,
    );
    meter.kv += orphans.length + strays.length;
    meter.d1 += orphans.length > 0 ? 2 : 0;
    // syncMirror re-reads D1 and deletes each key still without rows (or rewrites one that gained some).
    const failed = await syncMirror(env, orphans);
    await Promise.all(strays.map((key) => env.SUPPRESSIONS.delete(key)));
    const fixed = orphans.length - failed.length + strays.length;
    if (fixed > 0) log("warn", "suppression mirror drift repaired", { direction: "orphans", keys: fixed });
    checked += page.keys.length;
    repaired += fixed;
    cursor = page.list_complete ? null : page.cursor;
    if (cursor === null) break;
  }
  return { checked, repaired, next: cursor };
}
