/**
 * The soft_bounce rule's read (SPEC §10; src/suppressions/soft-bounce.ts writes the entries): a CTE
 * over `?1`, a JSON array of [account_id, recipient], and `?2`, now. It ends in
 * `c(account_id, recipient, at, email_id)`: the addresses whose last `run` SES outcomes (deliveries
 * and bounces) within `windowMs` were all transient bounces, with the last one's time and email_id,
 * still inside `holdMs` of it. One address's outcomes of the window are read through
 * events_recipient_idx.
 */
export function softBounceCandidatesCte(o: { run: number; windowMs: number; holdMs: number }): string {
  return `
WITH a AS (SELECT DISTINCT value->>0 AS account_id, value->>1 AS recipient FROM json_each(?1)),
o AS (
  SELECT a.account_id, a.recipient, e.occurred_at, e.email_id, e.type, e.bounce_type,
         row_number() OVER (PARTITION BY a.account_id, a.recipient ORDER BY e.occurred_at DESC, e.id DESC) AS n
    FROM a JOIN events AS e INDEXED BY events_recipient_idx
      ON e.account_id = a.account_id AND e.recipient = a.recipient AND e.occurred_at > ?2 - ${o.windowMs}
   WHERE e.type IN ('email.delivered', 'email.bounced')
),
c AS (
  SELECT account_id, recipient,
         MAX(CASE WHEN n = 1 THEN occurred_at END) AS at, MAX(CASE WHEN n = 1 THEN email_id END) AS email_id
    FROM o WHERE n <= ${o.run} GROUP BY account_id, recipient
  HAVING count(*) = ${o.run}
     AND sum(type = 'email.bounced' AND bounce_type = 'transient') = ${o.run}
     AND MAX(CASE WHEN n = 1 THEN occurred_at END) + ${o.holdMs} > ?2
)`;
}
