import type { Env } from "../env";
import { describeError, log } from "../lib/log";

/**
 * The KV mirror of the suppression list, read at send time by POST /v1/suppressions/check.
 *
 * Key layout: one key per account and address, `sup:{account_id}:{email}`, whose value is the JSON
 * array of the address's entries, `[{"topic": string | null, "reason", "suppressed_at"}]`. One key
 * per address means a check needs one multi-key get per 100 addresses, and the topic decision is
 * made from the value; a topic change rewrites the whole small value. The value is always derived
 * from D1 (the truth) after D1 has changed, so writing it twice is harmless, and a lost write is
 * repaired by the scheduled reconcile. KV allows one write per second per key, so callers pass every
 * address a batch touched and each key is written once.
 */

export const MIRROR_PREFIX = "sup:";

export interface MirrorEntry {
  topic: string | null;
  reason: string;
  suppressed_at: number;
}

export const mirrorKey = (accountId: string, email: string) => `${MIRROR_PREFIX}${accountId}:${email}`;

export interface AddressRef {
  accountId: string;
  email: string;
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
  for (const ref of refs) byKey.set(mirrorKey(ref.accountId, ref.email), []);
  if (refs.length === 0) return byKey;
  const pairs = [...byKey.keys()].map((key) => {
    const rest = key.slice(MIRROR_PREFIX.length);
    const colon = rest.indexOf(":");
    return [rest.slice(0, colon), rest.slice(colon + 1)];
  });
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
      topic: row.topic === "" ? null : row.topic,
      reason: row.reason,
      suppressed_at: row.suppressed_at,
    });
  }
  return byKey;
}

/** Rewrites the mirror of each address from D1: one put (or delete) per key. Returns the keys that failed. */
export async function syncMirror(env: Env, refs: AddressRef[]): Promise<string[]> {
  const entries = await readEntries(env, refs);
  const failed: string[] = [];
  await Promise.all(
    [...entries].map(async ([key, list]) => {
      try {
        if (list.length === 0) await env.SUPPRESSIONS.delete(key);
        else await env.SUPPRESSIONS.put(key, JSON.stringify(list));
      } catch (err) {
        failed.push(key);
        log("warn", "suppression mirror write failed; the reconcile will repair it", { key, ...describeError(err) });
      }
    }),
  );
  return failed;
}
