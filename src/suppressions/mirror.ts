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
 * changed, so writing it twice is harmless, and a lost write is repaired by the scheduled reconcile.
 * KV allows one write per second per key, so callers pass every address a batch touched and each key
 * is written once.
 */

export const MIRROR_PREFIX = "sup:";
/** KV's limit on keys per multi-key get. */
export const MAX_KEYS_PER_GET = 100;

export interface MirrorEntry {
  topic: string | null;
  reason: string;
  suppressed_at: number;
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
}

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
  const { results } = await env.DB.prepare(
    `SELECT s.account_id, s.email, s.topic, s.reason, s.suppressed_at
       FROM json_each(?) AS p
       JOIN suppressions AS s ON s.account_id = json_extract(p.value, '$[0]') AND s.email = json_extract(p.value, '$[1]')
      ORDER BY s.topic`,
  )
    .bind(JSON.stringify(pairs))
    .all<SuppressionDbRow>();
  for (const row of results) {
    byKey.get(mirrorKey(row.account_id, row.email))?.push({
      topic: topicOfColumn(row.topic),
      reason: row.reason,
      suppressed_at: row.suppressed_at,
    });
  }
  return byKey;
}

/** The mirror value of a list of entries; null means the key should not exist. */
export const mirrorValue = (list: MirrorEntry[]): string | null =>
  list.length === 0 ? null : JSON.stringify(list);

/** Rewrites the mirror of each address from D1: one put (or delete) per key. Returns the keys that failed. */
export async function syncMirror(env: Env, refs: AddressRef[]): Promise<string[]> {
  const entries = await readEntries(env, refs);
  const failed: string[] = [];
  await Promise.all(
    [...entries].map(async ([key, list]) => {
      const value = mirrorValue(list);
      try {
        if (value === null) await env.SUPPRESSIONS.delete(key);
        else await env.SUPPRESSIONS.put(key, value);
      } catch (err) {
        failed.push(key);
        log("warn", "suppression mirror write failed; the reconcile will repair it", {
          key,
          ...describeError(err),
        });
      }
    }),
  );
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
