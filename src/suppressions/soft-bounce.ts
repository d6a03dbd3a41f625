import { DAY_MS } from "../lib/params";
import { type RecentOutcome, softBounceCandidatesCte } from "../store";

/**
 * The soft_bounce rule (SPEC §10): an address whose last 5 SES outcomes (deliveries and bounces)
 * within 7 days were all transient bounces, with no delivery in between, is suppressed with reason
 * `soft_bounce` for 72 hours from the last of them.
 *
 * Statements for the consumer's batch transaction, after its events are inserted, for the addresses
 * that got a transient bounce in the batch (a JSON array of [account_id, recipient]). The candidates
 * come from the event store (one address's outcomes of 7 days, through its recipient index). The change record and the
 * mirror journal row are written first, for candidates without an entry yet; then the entry. All
 * three see the same state, so each new entry gets exactly one `suppression.created`, and a
 * redelivered batch (the entry now exists) records nothing again. An existing every-topic entry, of
 * any reason, is kept as it is. The insert returns the addresses it suppressed, for the KV mirror.
 */

export const SOFT_BOUNCE_RUN = 5;
export const SOFT_BOUNCE_WINDOW_MS = 7 * DAY_MS;
export const SOFT_BOUNCE_MS = 72 * 3600_000;

/** Candidates `c(account_id, recipient, at, email_id)`: the event store's query of the outcomes. */
const CANDIDATES = softBounceCandidatesCte({
  run: SOFT_BOUNCE_RUN,
  windowMs: SOFT_BOUNCE_WINDOW_MS,
  holdMs: SOFT_BOUNCE_MS,
});

const NEW = `NOT EXISTS (SELECT 1 FROM suppressions AS s WHERE s.account_id = c.account_id AND s.email = c.recipient AND s.topic = '')`;

export function softBounceStatements(
  db: D1Database,
  addresses: [string, string][],
  now: number,
): D1PreparedStatement[] {
  if (addresses.length === 0) return [];
  return entryStatements(db, CANDIDATES, JSON.stringify(addresses), now);
}

/** A candidate of the rule: the address, and the time and email of its last transient bounce. */
export interface SoftBounceCandidate {
  account_id: string;
  recipient: string;
  at: number;
  email_id: string;
}

/**
 * The rule over outcomes read from several shards (an account striped or moving, SPEC §17): each
 * address's newest SOFT_BOUNCE_RUN outcomes of the window, merged by (occurred_at, id), must all be
 * transient bounces, the last one less than SOFT_BOUNCE_MS ago.
 */
export function softBounceCandidates(outcomes: RecentOutcome[], now: number): SoftBounceCandidate[] {
  const byAddress = new Map<string, RecentOutcome[]>();
  for (const o of outcomes) {
    const k = `${o.account_id}\u0000${o.recipient}`;
    byAddress.set(k, [...(byAddress.get(k) ?? []), o]);
  }
  const out: SoftBounceCandidate[] = [];
  for (const list of byAddress.values()) {
    const newest = list
      .filter((o) => o.occurred_at > now - SOFT_BOUNCE_WINDOW_MS)
      .sort((a, b) => b.occurred_at - a.occurred_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, SOFT_BOUNCE_RUN);
    const last = newest[0];
    if (
      last &&
      newest.length === SOFT_BOUNCE_RUN &&
      newest.every((o) => o.type === "email.bounced" && o.bounce_type === "transient") &&
      last.occurred_at + SOFT_BOUNCE_MS > now
    )
      out.push({
        account_id: last.account_id,
        recipient: last.recipient,
        at: last.occurred_at,
        email_id: last.email_id,
      });
  }
  return out;
}

/** softBounceStatements for candidates the caller ruled on (softBounceCandidates), for their home shard. */
export function softBounceEntryStatements(
  db: D1Database,
  candidates: SoftBounceCandidate[],
  now: number,
): D1PreparedStatement[] {
  if (candidates.length === 0) return [];
  const cte = `WITH c AS (SELECT value->>'account_id' AS account_id, value->>'recipient' AS recipient,
                                 value->>'at' AS at, value->>'email_id' AS email_id
                            FROM json_each(?1) WHERE ?2 IS NOT NULL)`; // ?2 (now) bound as in CANDIDATES
  return entryStatements(db, cte, JSON.stringify(candidates), now);
}

/** The change record, the journal row, then the entry (returning the addresses it suppressed). */
function entryStatements(
  db: D1Database,
  candidates: string,
  json: string,
  now: number,
): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `${candidates}
         INSERT INTO suppression_changes (account_id, id, occurred_at, type, email, email_hash, topic, reason, email_id,
           suppressed_at, expires_at, pending)
         SELECT c.account_id, 'sch_' || lower(hex(randomblob(16))), ?2, 'suppression.created', c.recipient, NULL, '',
                'soft_bounce', c.email_id, c.at, c.at + ${SOFT_BOUNCE_MS}, 1
           FROM c WHERE ${NEW}`,
      )
      .bind(json, now),
    db
      .prepare(
        `${candidates}
         INSERT INTO mirror_pending (account_id, email, token, since)
         SELECT c.account_id, c.recipient, lower(hex(randomblob(8))), ?2 FROM c WHERE ${NEW}
         ON CONFLICT (account_id, email) DO UPDATE SET token = excluded.token`,
      )
      .bind(json, now),
    db
      .prepare(
        `${candidates}
         INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at)
         SELECT c.account_id, c.recipient, '', 'soft_bounce', c.email_id, c.at, c.at + ${SOFT_BOUNCE_MS} FROM c WHERE true
         ON CONFLICT DO NOTHING
         RETURNING account_id, email`,
      )
      .bind(json, now),
  ];
}
