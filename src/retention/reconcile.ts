import type { Env } from "../env";
import { log } from "../lib/log";
import {
  type AddressRef,
  fitsKv,
  MIRROR_PREFIX,
  mirrorKey,
  mirrorValue,
  parseMirrorKey,
  readEntries,
  readMirrorValues,
  syncMirror,
} from "../suppressions/mirror";
import { readCursor, writeCursor } from "./task-cursor";

/**
 * The mirror reconcile (SPEC §10, §12): repairs drift between D1 (the truth) and the KV mirror, a
 * bounded slice per run, in both directions.
 * - D1 → KV: the next `addresses` suppressed addresses in primary-key order; any whose KV value is
 *   missing or differs from what D1 says is rewritten.
 * - KV → D1: the next page of `sup:` keys; a key with no D1 rows (or one this layout never writes)
 *   is deleted.
 * Repairs go through syncMirror, which reads D1 again just before writing: an add or remove that
 * lands between the comparison and the repair is mirrored as it now is, not undone.
 */

export interface ReconcileBudget {
  /** D1 addresses compared per run: one D1 read, one multi-key get per 100, a write per drifted key. */
  addresses: number;
  /** KV keys listed and checked per run: one list page (KV returns at most 1000), a delete per orphan. */
  keys: number;
}

/** Together at most ~910 KV operations and a handful of D1 queries: inside one invocation's limits. */
export const DEFAULT_RECONCILE_BUDGET: ReconcileBudget = { addresses: 500, keys: 400 };

export interface ReconcileResult {
  addressesChecked: number;
  rewritten: number;
  keysChecked: number;
  deleted: number;
  /** The D1 pass reached the last address (it restarts from the first next run). */
  d1Complete: boolean;
  /** The KV pass reached the last key. */
  kvComplete: boolean;
}

export const RECONCILE_CURSOR_KEY = "meta:reconcile";

interface ReconcileCursor {
  /** The last (account_id, email) the D1 pass compared. */
  d1: [string, string] | null;
  /** KV's list cursor for the next page. */
  kv: string | null;
}

const NEXT_ADDRESSES = `
SELECT DISTINCT account_id, email FROM suppressions
WHERE (account_id, email) > (?1, ?2) ORDER BY account_id, email LIMIT ?3`;

export async function reconcileMirror(
  env: Env,
  budget: ReconcileBudget = DEFAULT_RECONCILE_BUDGET,
): Promise<ReconcileResult> {
  const cursor = (await readCursor<ReconcileCursor>(env, RECONCILE_CURSOR_KEY)) ?? { d1: null, kv: null };
  const d1 = await reconcileFromD1(env, cursor.d1, budget.addresses);
  const kv = await reconcileFromKv(env, cursor.kv, budget.keys);
  await writeCursor(env, RECONCILE_CURSOR_KEY, { d1: d1.next, kv: kv.next } satisfies ReconcileCursor);
  return {
    addressesChecked: d1.checked,
    rewritten: d1.repaired,
    keysChecked: kv.checked,
    deleted: kv.repaired,
    d1Complete: d1.next === null,
    kvComplete: kv.next === null,
  };
}

async function reconcileFromD1(env: Env, after: [string, string] | null, limit: number) {
  const [account, email] = after ?? ["", ""];
  const { results } = await env.DB.prepare(NEXT_ADDRESSES)
    .bind(account, email, limit)
    .all<{ account_id: string; email: string }>();
  const all: AddressRef[] = results.map((r) => ({ accountId: r.account_id, email: r.email }));
  // An address too long for a KV key can never be mirrored; reading it would fail the whole slice.
  const refs = all.filter((ref) => fitsKv(mirrorKey(ref.accountId, ref.email)));
  const expected = await readEntries(env, refs);
  const actual = await readMirrorValues(env, [...expected.keys()]);
  const drifted = refs.filter((ref) => {
    const key = mirrorKey(ref.accountId, ref.email);
    return (actual.get(key) ?? null) !== mirrorValue(expected.get(key) ?? []);
  });
  const failed = await syncMirror(env, drifted);
  if (drifted.length > 0)
    log("warn", "suppression mirror drift repaired", { direction: "d1_to_kv", keys: drifted.length });
  const last = all[all.length - 1];
  const next: [string, string] | null = all.length < limit || !last ? null : [last.accountId, last.email];
  return { checked: refs.length, repaired: drifted.length - failed.length, next };
}

async function reconcileFromKv(env: Env, cursor: string | null, limit: number) {
  const page = await env.SUPPRESSIONS.list({ prefix: MIRROR_PREFIX, cursor, limit });
  const refs: AddressRef[] = [];
  const strays: string[] = [];
  for (const { name } of page.keys) {
    const ref = parseMirrorKey(name);
    if (ref && mirrorKey(ref.accountId, ref.email) === name) refs.push(ref);
    else strays.push(name);
  }
  const entries = await readEntries(env, refs);
  const orphans = refs.filter((ref) => (entries.get(mirrorKey(ref.accountId, ref.email)) ?? []).length === 0);
  // syncMirror re-reads D1 and deletes each key still without rows (or rewrites one that gained some).
  const failed = await syncMirror(env, orphans);
  await Promise.all(strays.map((key) => env.SUPPRESSIONS.delete(key)));
  const repaired = orphans.length - failed.length + strays.length;
  if (repaired > 0)
    log("warn", "suppression mirror drift repaired", { direction: "kv_to_d1", keys: repaired });
  return { checked: page.keys.length, repaired, next: page.list_complete ? null : page.cursor };
}
