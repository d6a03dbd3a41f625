import { ID_DEDUPED_SQL } from "../db/event-record";
import { LINK_ROLLUP_KEY_COLUMNS } from "../db/metrics";
import { DAY_MS } from "../lib/params";
import { consumerProviderSql } from "../mailbox/providers";

/**
 * The statements that keep link_rollups (db/metrics.ts) equal to the stored clicks, run by the queue
 * consumer in the same D1 batch as the events, like metrics/rollup.ts:
 * - `newClicksRollup`, just before the events insert with the same chunk: first arrivals only;
 * - `removedClicksRollup`, just before scanner-burst clicks are deleted for good.
 *
 * `clicked` counts clicks, `clicked_by_person` those with `tracking.bot` null, `unique_clicked` each
 * (email_id, recipient, url) once: credited to a click when no other stored click of the same
 * recipient, email and URL exists (a lookup on events_email_idx), and taken back when the last such
 * click is removed. Totals are exact; when clicks of one pair arrive out of order the credit stays in
 * the day of the first to arrive. A click's dimensions are those the events insert gives it
 * (enriched from the registration); a registration arriving after its clicks does not move them
 * here (instrumented mail registers before it is sent).
 */

const j = (field: string) => `json_extract(value, '$.${field}')`;
const url = (a: string) => `json_extract(${a}.tracking, '$.url')`;
const linkName = (a: string) => `COALESCE(json_extract(${a}.tracking, '$.link_name'), '')`;
const isPerson = (a: string) => `json_extract(${a}.tracking, '$.bot') IS NULL`;
const domainOf = (a: string) =>
  `substr(${a}.recipient, length(rtrim(${a}.recipient, replace(${a}.recipient, '@', ''))) + 1)`;
const sortedTags = (tags: string) =>
  `(SELECT json_group_array(value) FROM (SELECT value FROM json_each(${tags}) ORDER BY value))`;
const provider = (a: string) =>
  `COALESCE(${consumerProviderSql(domainOf(a))}, (SELECT md.provider FROM mailbox_domains AS md WHERE md.domain = ${domainOf(a)}), 'other')`;

/** The link rollups' key, declared once beside the table (db/metrics.ts). */
const KEY = LINK_ROLLUP_KEY_COLUMNS;
const COUNTERS = ["clicked", "unique_clicked", "clicked_by_person"] as const;

function keyOf(a: string): string {
  return [
    `${a}.account_id`,
    `${a}.occurred_at - ${a}.occurred_at % ${DAY_MS}`,
    url(a),
    linkName(a),
    `COALESCE(${a}.campaign, '')`,
    `COALESCE(${a}.template_id, '')`,
    `COALESCE(${a}.topic, '')`,
    `COALESCE(${a}.from_domain, '')`,
    sortedTags(`${a}.tags`),
    provider(a),
  ].join(", ");
}

/** Another stored click of a's (email, recipient, url) than `a` itself, optionally outside a set. */
const otherStoredClick = (a: string, exclude = "") =>
  `EXISTS (SELECT 1 FROM events AS p INDEXED BY events_email_idx
     WHERE p.account_id = ${a}.account_id AND p.email_id = ${a}.email_id AND p.recipient = ${a}.recipient
       AND p.type = 'email.clicked' AND ${url("p")} = ${url(a)} AND p.id <> ${a}.id${exclude})`;

function upsert(ctes: string, select: string): string {
  return `WITH ${ctes},
contrib (${[...KEY, ...COUNTERS].join(", ")}) AS (${select})
INSERT INTO link_rollups (${[...KEY, ...COUNTERS].join(", ")})
SELECT ${KEY.join(", ")}, ${COUNTERS.map((c) => `SUM(${c})`).join(", ")}
FROM contrib WHERE url IS NOT NULL
GROUP BY ${KEY.join(", ")}
HAVING ${COUNTERS.map((c) => `SUM(${c}) <> 0`).join(" OR ")}
ON CONFLICT (${KEY.join(", ")}) DO UPDATE SET
  ${COUNTERS.map((c) => `${c} = ${c} + excluded.${c}`).join(",\n  ")}`;
}

const NEW_CLICKS = (() => {
  const fields = [
    "account_id",
    "occurred_at",
    "id",
    "type",
    "email_id",
    "recipient",
    "tracking",
    "campaign",
    "template_id",
    "topic",
    "from_domain",
    "tags",
  ];
  const batch = `b AS (SELECT ${fields.map((f) => `${j(f)} AS ${f}`).join(", ")} FROM json_each(?1)
    WHERE ${j("type")} = 'email.clicked')`;
  const dims = ["campaign", "template_id", "topic", "from_domain"];
  const fresh = `n AS MATERIALIZED (
  SELECT b.account_id, b.occurred_at, b.id, b.email_id, b.recipient, b.tracking,
    ${dims.map((d) => `COALESCE(b.${d}, m.${d}) AS ${d}`).join(", ")},
    CASE WHEN b.tags = '[]' AND m.tags IS NOT NULL THEN m.tags ELSE b.tags END AS tags
  FROM b LEFT JOIN messages AS m ON m.account_id = b.account_id AND m.email_id = b.email_id
  WHERE NOT EXISTS (SELECT 1 FROM events AS x
                     WHERE x.account_id = b.account_id AND x.occurred_at = b.occurred_at AND x.id = b.id)
    AND ('email.clicked' NOT IN (${ID_DEDUPED_SQL})
         OR NOT EXISTS (SELECT 1 FROM events AS x INDEXED BY events_email_idx
                         WHERE x.account_id = b.account_id AND x.email_id = b.email_id AND x.id = b.id)))`;
  // Credited: no stored click of the pair and URL, and the earliest of the batch's.
  const credited = `(NOT ${otherStoredClick("n")}
    AND NOT EXISTS (SELECT 1 FROM n AS c2 WHERE c2.account_id = n.account_id AND c2.email_id = n.email_id
      AND c2.recipient = n.recipient AND ${url("c2")} = ${url("n")} AND (c2.occurred_at, c2.id) < (n.occurred_at, n.id)))`;
  return upsert(`${batch},\n${fresh}`, `SELECT ${keyOf("n")}, 1, ${credited}, ${isPerson("n")} FROM n`);
})();

/** Counts the first-arriving clicks of a chunk of event rows; run it just before the chunk's insert. */
export function newClicksRollup(db: D1Database, chunk: string): D1PreparedStatement {
  return db.prepare(NEW_CLICKS).bind(chunk);
}

const REMOVED = (() => {
  const keys = `d AS (SELECT ${j("account_id")} AS account_id, ${j("occurred_at")} AS occurred_at, ${j("id")} AS id
  FROM json_each(?1))`;
  const gone = `g AS MATERIALIZED (SELECT e.* FROM d JOIN events AS e
  ON e.account_id = d.account_id AND e.occurred_at = d.occurred_at AND e.id = d.id WHERE e.type = 'email.clicked')`;
  const notGone = ` AND NOT EXISTS (SELECT 1 FROM d WHERE d.account_id = p.account_id AND d.occurred_at = p.occurred_at AND d.id = p.id)`;
  // The unique credit goes with the pair's last click: taken back once, from the earliest removed one.
  const last = `(NOT ${otherStoredClick("g", notGone)}
    AND NOT EXISTS (SELECT 1 FROM g AS g2 WHERE g2.account_id = g.account_id AND g2.email_id = g.email_id
      AND g2.recipient = g.recipient AND ${url("g2")} = ${url("g")} AND (g2.occurred_at, g2.id) < (g.occurred_at, g.id)))`;
  return upsert(`${keys},\n${gone}`, `SELECT ${keyOf("g")}, -1, -${last}, -(${isPerson("g")}) FROM g`);
})();

/** Stored clicks (by primary key) are about to be deleted for good: take back what they counted. */
export function removedClicksRollup(
  db: D1Database,
  keys: { account_id: string; occurred_at: number; id: string }[],
): D1PreparedStatement {
  return db.prepare(REMOVED).bind(JSON.stringify(keys));
}

const REBUILD = upsert(
  "e AS (SELECT * FROM events WHERE account_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3 AND type = 'email.clicked')",
  `SELECT ${keyOf("e")}, 1,
     NOT EXISTS (SELECT 1 FROM events AS p INDEXED BY events_email_idx
       WHERE p.account_id = e.account_id AND p.email_id = e.email_id AND p.recipient = e.recipient
         AND p.type = 'email.clicked' AND ${url("p")} = ${url("e")} AND (p.occurred_at, p.id) < (e.occurred_at, e.id)),
     ${isPerson("e")}
   FROM e`,
);

/** Recomputes an account's link rollups from its stored clicks (the one-time back-fill; the benchmark's bulk load). */
export function rebuildLinkRollups(db: D1Database, accountId: string): D1PreparedStatement[] {
  return [
    clearLinkRollups(db, accountId),
    rebuildLinkRollupsRange(db, accountId, 0, Number.MAX_SAFE_INTEGER),
  ];
}

/** Deletes an account's link rollups, before a rebuild. */
export function clearLinkRollups(db: D1Database, accountId: string): D1PreparedStatement {
  return db.prepare("DELETE FROM link_rollups WHERE account_id = ?1").bind(accountId);
}

/** Adds the link rollups of an account's stored clicks in [start, end) (cut ranges on UTC days; see rebuildRollupsRange). */
export function rebuildLinkRollupsRange(
  db: D1Database,
  accountId: string,
  start: number,
  end: number,
): D1PreparedStatement {
  return db.prepare(REBUILD).bind(accountId, start, end);
}

export interface LinkRow {
  url: string;
  link_name: string;
  clicked: number;
  unique_clicked: number;
  clicked_by_person: number;
  /** Rollup rows summed into this link. */
  n: number;
}

/**
 * Clicks per link of an account over [start, end) (UTC days), filtered, reading at most `limit`
 * rollup rows (the caller's budget: the rows' `n` add up to what was read).
 */
export async function sumLinkRollups(
  db: D1Database,
  accountId: string,
  q: {
    start: number;
    end: number;
    campaign?: string | undefined;
    template_id?: string | undefined;
    topic?: string | undefined;
    domain?: string | undefined;
    mailbox_provider?: string | undefined;
    tags?: string[] | undefined;
  },
  limit: number,
): Promise<{ results: LinkRow[]; meta: { rows_read: number } }> {
  const where = ["account_id = ?", "day >= ?", "day < ?"];
  const values: (string | number)[] = [accountId, q.start, q.end];
  const eq = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(`${column} = ?`);
    values.push(value);
  };
  eq("campaign", q.campaign);
  eq("template_id", q.template_id);
  eq("topic", q.topic);
  eq("from_domain", q.domain);
  eq("mailbox_provider", q.mailbox_provider);
  if (q.tags) {
    where.push(
      `EXISTS (SELECT 1 FROM json_each(tags) AS f WHERE f.value IN (${q.tags.map(() => "?").join(", ")}))`,
    );
    values.push(...q.tags);
  }
  // The rows, summed per link here rather than by a GROUP BY: D1 counts every row again as it
  // leaves SQLite's sorter, which would spend half of §18's budget (see buildMetricsStatements).
  const result = await db
    .prepare(
      `SELECT url, link_name, clicked, unique_clicked, clicked_by_person FROM link_rollups
       WHERE ${where.join(" AND ")} LIMIT ${Math.floor(limit)}`,
    )
    .bind(...values)
    .all<Omit<LinkRow, "n">>();
  const { results } = mergeLinkSums([
    { results: result.results.map((r) => ({ ...r, n: 1 })), meta: result.meta },
  ]);
  return { results, meta: { rows_read: result.meta.rows_read } };
}

/**
 * Link sums of several shards (an account's stripes, or a placement and its previous one, SPEC
 * §17) as one: a link's counters add up. An email lives on one shard, so its unique click is
 * credited once. `scanned` is the most rollup rows one shard read (§18's budget holds per shard).
 */
export function mergeLinkSums(parts: { results: LinkRow[]; meta: { rows_read: number } }[]): {
  results: LinkRow[];
  meta: { rows_read: number };
  scanned: number;
} {
  const byLink = new Map<string, LinkRow>();
  let rowsRead = 0;
  let scanned = 0;
  for (const part of parts) {
    rowsRead += part.meta.rows_read;
    scanned = Math.max(
      scanned,
      part.results.reduce((n, r) => n + r.n, 0),
    );
    for (const r of part.results) {
      const key = `${r.url}\u0000${r.link_name}`;
      const seen = byLink.get(key);
      if (!seen) byLink.set(key, { ...r });
      else {
        seen.clicked += r.clicked;
        seen.unique_clicked += r.unique_clicked;
        seen.clicked_by_person += r.clicked_by_person;
        seen.n += r.n;
      }
    }
  }
  return { results: [...byLink.values()], meta: { rows_read: rowsRead }, scanned };
}
