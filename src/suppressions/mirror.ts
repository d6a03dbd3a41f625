import { topicOfColumn } from "../db/suppressions";
import type { Env } from "../env";
import { describeError, log } from "../lib/log";

/**
 * The KV mirror of the suppression list, read at send time by POST /v1/suppressions/check.
 *
 * Key layout: one key per account and address, `sup:{encodeURIComponent(account_id)}:{email}`, whose
 * value is the JSON array of the address's entries, `[{"topic": string | null, "reason",
 * "suppressed_at"}]`, ordered by topic (the every-topic entry first). The account is percent-encoded
 * because account ids may contain `:`; with it encoded, the first `:` after the prefix always ends the
 * account and a key parses back to exactly one (account, email). One key per address means a check
 * needs one multi-key get per 100 addresses, and the topic decision is made from the value; a topic
 * change rewrites the whole small value. The value is always derived from D1 (the truth) after D1 has
 * changed, so writing it twice is harmless; each put carries the value's fingerprint as metadata (for
 * the reconcile's sweep). Every D1 change also writes a journal row (`mirror_pending`, markPending) in
 * its own transaction, cleared once KV is confirmed (syncMirror), so a lost write is always found by
 * the next reconcile run. KV allows one write per second per key, so callers pass every address a
 * batch touched and each key is written once.
 */

export const MIRROR_PREFIX = "sup:";
/** KV's limit on keys per multi-key get. */
export const MAX_KEYS_PER_GET = 100;

export interface MirrorEntry {
  topic: string | null;
  reason: string;
  suppressed_at: number;
  /** Epoch ms when the entry stops suppressing; absent: never (kept absent so older values stay equal). */
  expires_at?: number;
}

/** A stored entry as the mirror holds it (the one place the value's shape is made). */
export function mirrorEntryOf(row: {
  topic: string;
  reason: string;
  suppressed_at: number;
  expires_at: number | null;
}): MirrorEntry {
  return {
    topic: topicOfColumn(row.topic),
    reason: row.reason,
    suppressed_at: row.suppressed_at,
    ...(row.expires_at === null ? {} : { expires_at: row.expires_at }),
  };
}

/** Whether an entry suppresses at `now` (an expired one stops at its expires_at, to the millisecond). */
export const isLive = (entry: { expires_at?: number | null }, now: number) =>
  entry.expires_at === undefined || entry.expires_at === null || entry.expires_at > now;

/** KV's rule: an expiration must be at least 60 s ahead. */
export const KV_MIN_EXPIRATION_MS = 60_000;

/**
 * The KV expiration (epoch seconds) of a mirror value: the latest expires_at when every entry
 * expires (so KV drops the key when its last entry stops suppressing), none when one never does.
 * KV refuses an expiration less than 60 s ahead: such a key gets exactly 60 s (its entries carry their
 * own expires_at, which check honours to the millisecond).
 */
export function mirrorExpiration(list: MirrorEntry[], now: number): number | undefined {
  if (list.length === 0 || list.some((e) => e.expires_at === undefined)) return undefined;
  const last = Math.max(...list.map((e) => e.expires_at ?? 0));
  return Math.ceil(Math.max(last, now + KV_MIN_EXPIRATION_MS) / 1000);
}

/** KV's key size limit: a longer key can be neither written nor read (a multi-key get would fail whole). */
export const MAX_KEY_BYTES = 512;

export const mirrorKey = (accountId: string, email: string) =>
  `${MIRROR_PREFIX}${encodeURIComponent(accountId)}:${email}`;

export interface AddressRef {
  accountId: string;
  email: string;
}

/** The address a mirror key names, or null for a key this layout never writes. */
export function parseMirrorKey(key: string): AddressRef | null {
  if (!key.startsWith(MIRROR_PREFIX)) return null;
  const rest = key.slice(MIRROR_PREFIX.length);
  const colon = rest.indexOf(":");
  if (colon <= 0 || colon === rest.length - 1) return null;
  try {
    return { accountId: decodeURIComponent(rest.slice(0, colon)), email: rest.slice(colon + 1) };
  } catch {
    return null;
  }
}

interface SuppressionDbRow {
  account_id: string;
  email: string;
  topic: string;
  reason: string;
  suppressed_at: number;
  expires_at: number | null;
}

/** The live entries of each address (an expired entry no longer suppresses, even before its deletion). */
const ENTRIES_OF = `
SELECT s.account_id, s.email, s.topic, s.reason, s.suppressed_at, s.expires_at
  FROM json_each(?1) AS p
  JOIN suppressions AS s ON s.account_id = json_extract(p.value, '$[0]') AND s.email = json_extract(p.value, '$[1]')
 WHERE s.expires_at IS NULL OR s.expires_at > ?2
 ORDER BY s.account_id, s.email, s.topic`;

/** D1's entries for each address, grouped by mirror key (every requested key present, maybe empty). */
export async function readEntries(env: Env, refs: AddressRef[]): Promise<Map<string, MirrorEntry[]>> {
  const byKey = new Map<string, MirrorEntry[]>();
  const pairs: [string, string][] = [];
  for (const ref of refs) {
    const key = mirrorKey(ref.accountId, ref.email);
    if (byKey.has(key)) continue;
    byKey.set(key, []);
    pairs.push([ref.accountId, ref.email]);
  }
  if (pairs.length === 0) return byKey;
  const { results } = await env.DB.prepare(ENTRIES_OF)
    .bind(JSON.stringify(pairs), Date.now())
    .all<SuppressionDbRow>();
  for (const row of results) byKey.get(mirrorKey(row.account_id, row.email))?.push(mirrorEntryOf(row));
  return byKey;
}

/** The mirror value of a list of entries; null means the key should not exist. */
export const mirrorValue = (list: MirrorEntry[]): string | null =>
  list.length === 0 ? null : JSON.stringify(list);

/**
 * Every put carries the value's fingerprint as KV metadata, which `list` returns with the key: the
 * reconcile compares a thousand keys with D1 per list call instead of reading each value.
 */
export interface MirrorMetadata {
  h: string;
}

/** A 64-bit FNV-1a fingerprint of a mirror value (two 32-bit lanes), as 16 hex digits. */
export function mirrorFingerprint(value: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < value.length; i += 1) {
    const c = value.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

/**
 * The journal statement (src/db/mirror-pending.ts): marks each address as changed in D1 and not yet
 * mirrored. Callers put it in the same D1 batch (one transaction) as the change itself, so a change
 * can never be committed without its journal row. A new random token per change; `since` keeps the
 * first unmirrored change's time.
 */
export function markPending(env: Env, refs: AddressRef[], now: number): D1PreparedStatement {
  const pairs = refs
    .filter((ref) => fitsKv(mirrorKey(ref.accountId, ref.email)))
    .map((ref) => [ref.accountId, ref.email]);
  return env.DB.prepare(
    `INSERT INTO mirror_pending (account_id, email, token, since)
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), lower(hex(randomblob(8))), ?2
       FROM json_each(?1) WHERE true
     ON CONFLICT (account_id, email) DO UPDATE SET token = excluded.token`,
  ).bind(JSON.stringify(pairs), now);
}

interface PendingDbRow {
  account_id: string;
  email: string;
  token: string;
}

const PENDING_TOKENS = `
SELECT p.account_id, p.email, p.token FROM json_each(?1) AS j
JOIN mirror_pending AS p ON p.account_id = json_extract(j.value, '$[0]') AND p.email = json_extract(j.value, '$[1]')`;

const CLEAR_PENDING = `
DELETE FROM mirror_pending WHERE (account_id, email, token) IN (
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?1))`;

interface AddressState {
  ref: AddressRef;
  value: string | null;
  /** KV expiration (epoch seconds) of the value, when every entry expires. */
  expiration?: number | undefined;
  token: string | null;
}

/** D1's value and journal token of each address, in one round trip (plus `extra` statements after the reads). */
async function readState(
  env: Env,
  refs: AddressRef[],
  extra: D1PreparedStatement[] = [],
): Promise<Map<string, AddressState>> {
  const state = new Map<string, AddressState>();
  const pairs: [string, string][] = [];
  for (const ref of refs) {
    const key = mirrorKey(ref.accountId, ref.email);
    if (state.has(key)) continue;
    state.set(key, { ref, value: null, token: null });
    pairs.push([ref.accountId, ref.email]);
  }
  if (pairs.length === 0 && extra.length === 0) return state;
  const json = JSON.stringify(pairs);
  const now = Date.now();
  const [entries, tokens] = await env.DB.batch([
    env.DB.prepare(ENTRIES_OF).bind(json, now),
    env.DB.prepare(PENDING_TOKENS).bind(json),
    ...extra,
  ]);
  const lists = new Map<string, MirrorEntry[]>();
  for (const row of (entries?.results ?? []) as SuppressionDbRow[]) {
    const key = mirrorKey(row.account_id, row.email);
    const list = lists.get(key) ?? [];
    list.push(mirrorEntryOf(row));
    lists.set(key, list);
  }
  for (const [key, list] of lists) {
    const s = state.get(key);
    if (s) {
      s.value = mirrorValue(list);
      s.expiration = mirrorExpiration(list, now);
    }
  }
  for (const row of (tokens?.results ?? []) as PendingDbRow[]) {
    const s = state.get(mirrorKey(row.account_id, row.email));
    if (s) s.token = row.token;
  }
  return state;
}

/** Rounds of write-then-verify before an address that keeps changing is left to the reconcile. */
const MAX_ROUNDS = 3;

/**
 * Makes KV hold what D1 holds for each address, and clears the journal rows it mirrored. Returns the
 * keys it could not confirm (a KV write failed, or D1 kept changing); their journal rows stay, and the
 * scheduled reconcile repairs them on its next run.
 *
 * Why it converges although KV has no compare-and-swap: after writing, it reads D1 again and writes
 * again if D1 changed meanwhile. Take the last KV write to a key: its writer then read D1 and found
 * the value it had written (or it would have written again). Any D1 change after that read was made
 * by another writer, whose own KV write necessarily comes later, a contradiction. So once writers are
 * done, KV equals D1, whatever the interleaving of reads and writes; a writer that failed or died
 * leaves its journal row, which the reconcile finds.
 */
export async function syncMirror(env: Env, refs: AddressRef[]): Promise<string[]> {
  const mirrorable = refs.filter((ref) => fitsKv(mirrorKey(ref.accountId, ref.email)));
  let state = await readState(env, mirrorable);
  const failed: string[] = [];
  for (let round = 0; round < MAX_ROUNDS && state.size > 0; round += 1) {
    const written: AddressState[] = [];
    await Promise.all(
      [...state].map(async ([key, s]) => {
        try {
          if (s.value === null) await env.SUPPRESSIONS.delete(key);
          else
            await env.SUPPRESSIONS.put(key, s.value, {
              metadata: { h: mirrorFingerprint(s.value) } satisfies MirrorMetadata,
              ...(s.expiration === undefined ? {} : { expiration: s.expiration }),
            });
          written.push(s);
        } catch (err) {
          failed.push(key);
          log("warn", "suppression mirror write failed; the reconcile will repair it", {
            key,
            ...describeError(err),
          });
        }
      }),
    );
    if (written.length === 0) break;
    // Verify and clear in one round trip: a journal row is deleted only if its token is still the one
    // read before the write, so a change made meanwhile keeps its row (and shows up in the re-read).
    const tokens = written
      .filter((s) => s.token !== null)
      .map((s) => [s.ref.accountId, s.ref.email, s.token]);
    const clear = tokens.length > 0 ? [env.DB.prepare(CLEAR_PENDING).bind(JSON.stringify(tokens))] : [];
    const again = await readState(
      env,
      written.map((s) => s.ref),
      clear,
    );
    const changed = new Map<string, AddressState>();
    for (const [key, s] of again) {
      const before = state.get(key);
      if (before && before.value !== s.value) changed.set(key, s);
    }
    state = changed;
  }
  if (state.size > 0) {
    failed.push(...state.keys());
    log("warn", "suppression mirror kept changing while written; the reconcile will finish it", {
      keys: state.size,
    });
  }
  return failed;
}

/** Whether a key fits KV: the consumer stores recipients of up to 320 characters, which may not. */
export const fitsKv = (key: string) => new TextEncoder().encode(key).length <= MAX_KEY_BYTES;

/** The parsed entries of many mirror keys (null where a key is absent): one multi-key get per 100 keys. */
export const readMirrorEntries = (env: Env, keys: string[]) =>
  getMany(keys, (chunk) => env.SUPPRESSIONS.get<MirrorEntry[]>(chunk, "json"));

/** The raw values of many mirror keys, for comparison with what D1 says they should be. */
export const readMirrorValues = (env: Env, keys: string[]) =>
  getMany(keys, (chunk) => env.SUPPRESSIONS.get(chunk, "text"));

async function getMany<V>(
  keys: string[],
  get: (chunk: string[]) => Promise<Map<string, V | null>>,
): Promise<Map<string, V | null>> {
  const unique = [...new Set(keys)];
  const chunks: string[][] = [];
  for (let i = 0; i < unique.length; i += MAX_KEYS_PER_GET)
    chunks.push(unique.slice(i, i + MAX_KEYS_PER_GET));
  const all = new Map<string, V | null>();
  for (const map of await Promise.all(chunks.map(get))) {
    for (const [key, value] of map) all.set(key, value);
  }
  return all;
}
