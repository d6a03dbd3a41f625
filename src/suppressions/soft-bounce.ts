import { DAY_MS } from "../lib/params";
import { softBounceCandidatesCte } from "../store";

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
  const json = JSON.stringify(addresses);
  return [
    db
      .prepare(
        `${CANDIDATES}
         INSERT INTO suppression_changes (account_id, id, occurred_at, type, email, email_hash, topic, reason, email_id,
           suppressed_at, expires_at, pending)
         SELECT c.account_id, 'sch_' || lower(hex(randomblob(16))), ?2, 'suppression.created', c.recipient, NULL, '',
                'soft_bounce', c.email_id, c.at, c.at + ${SOFT_BOUNCE_MS}, 1
           FROM c WHERE ${NEW}`,
      )
      .bind(json, now),
    db
      .prepare(
        `${CANDIDATES}
         INSERT INTO mirror_pending (account_id, email, token, since)
         SELECT c.account_id, c.recipient, lower(hex(randomblob(8))), ?2 FROM c WHERE ${NEW}
         ON CONFLICT (account_id, email) DO UPDATE SET token = excluded.token`,
      )
      .bind(json, now),
    db
      .prepare(
        `${CANDIDATES}
         INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at)
         SELECT c.account_id, c.recipient, '', 'soft_bounce', c.email_id, c.at, c.at + ${SOFT_BOUNCE_MS} FROM c WHERE true
         ON CONFLICT DO NOTHING
         RETURNING account_id, email`,
      )
      .bind(json, now),
  ];
}
