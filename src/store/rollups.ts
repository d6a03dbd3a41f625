import type { Dimension } from "../db/event-record";
import {
  DAY_DOMAINS_ROLLUP_KEY_COLUMNS,
  DAY_ROLLUP_KEY_COLUMNS,
  DAY_ROLLUP_MS,
  FOLD_CAP,
  FOLDED_DIMENSIONS,
  FOLDED_VALUE,
  HOUR_ROLLUP_KEY_COLUMNS,
  HOUR_ROLLUP_MS,
  METRIC_COUNTERS,
  type MetricCounter,
  ROLLUP_BUCKET_MS,
  ROLLUP_KEY_COLUMNS,
} from "../db/metrics";
import { col, fill, firstArrival, gap, jsonField as j, registrationOf } from "./fragments";
import { COUNTER_OF_TYPE } from "./hour-totals";

/**
 * The statements that keep metric_rollups (db/metric-rollups.ts) equal to the events table, run by the
 * queue consumer inside the same D1 batch (one transaction) as the event writes they count.
 *
 * Each statement computes signed contributions in SQL, sums them per rollup key and upserts one
 * row per key (`n = n + excluded.n`), so a batch's events of one campaign and quarter hour cost one
 * row written. Three changes to the events table move the numbers:
 * - new events (`newEventsRollup`, placed just before the events insert, with the same chunk):
 *   only first arrivals count, found the way the insert finds them (the primary key, and for
 *   `email.suppressed` its id on the email index);
 * - a registration back-filling stored events' dimensions (`backfillRollup`, just before the
 *   back-fill): each changed event moves from its old key to its new one;
 * - stored events being deleted for good, e.g. scanner-burst clicks (`removedEventsRollup`, just
 *   before the DELETE): their contribution is taken back.
 *
 * Unique counters credit the earliest stored event (by occurred_at, then id) of an email and
 * recipient: "first" is the earliest open, not the first to arrive. When an earlier open arrives
 * after a later one was credited, the credit moves: +1 in the new event's bucket, -1 in the old
 * one's. Whether an event is the earliest is a lookup on events_email_idx (account, email_id,
 * occurred_at): a few rows read per open or click, no extra table and no extra row written per
 * event. Limitation: once the purge removes an email's raw events, a later open of that email
 * and recipient is counted as a first one again (documented in README's Metrics section).
 */

const B = ROLLUP_BUCKET_MS;
/**
 * The grains every statement below writes (db/metric-rollups.ts): the quarter-hour rows with every
 * dimension, the coarser UTC-day rows without the recipient domain, the UTC-day rows of the sending
 * and recipient domains alone, and the hourly account totals without any dimension, which answer
 * most queries with far fewer rows read (store/rollup-reads.ts picks). Each statement is built per
 * grain.
 */
type Grain = "quarter" | "day" | "domains" | "hour";
const GRAINS: readonly Grain[] = ["quarter", "day", "domains", "hour"];
const TABLE: Record<Grain, string> = {
  quarter: "metric_rollups",
  day: "metric_rollups_day",
  domains: "metric_rollups_day_domains",
  hour: "metric_rollups_hour",
};
const KEY_COLUMNS_OF: Record<Grain, readonly string[]> = {
  quarter: ROLLUP_KEY_COLUMNS,
  day: DAY_ROLLUP_KEY_COLUMNS,
  domains: DAY_DOMAINS_ROLLUP_KEY_COLUMNS,
  hour: HOUR_ROLLUP_KEY_COLUMNS,
};
const WIDTH: Record<Grain, number> = {
  quarter: B,
  day: DAY_ROLLUP_MS,
  domains: DAY_ROLLUP_MS,
  hour: HOUR_ROLLUP_MS,
};
/** The event dimensions in the rollup key (recipient_domain is derived from the recipient). */
const KEY_DIMENSIONS: Dimension[] = ["campaign", "template_id", "topic", "from_domain", "tags"];

/** Domain of an address: after its last '@' (rtrim strips every trailing character that is not '@'). */
const recipientDomain = (a: string) =>
  `substr(${a}.recipient, length(rtrim(${a}.recipient, replace(${a}.recipient, '@', ''))) + 1)`;
/** A tag set in one canonical form, so that one set is one key whatever order it was given in. */
const sortedTags = (tags: string) =>
  `(SELECT json_group_array(value) FROM (SELECT value FROM json_each(${tags}) ORDER BY value))`;

/** The rollup key of the event row `a` (its columns named as in the events table) at a grain. */
function keyOf(a: string, grain: Grain): string {
  const bucket = `${a}.occurred_at - ${a}.occurred_at % ${WIDTH[grain]}`;
  if (grain === "hour") return [`${a}.account_id`, bucket].join(", ");
  if (grain === "domains")
    return [`${a}.account_id`, bucket, `COALESCE(${a}.from_domain, '')`, recipientDomain(a)].join(", ");
  return [
    `${a}.account_id`,
    bucket,
    `COALESCE(${a}.campaign, '')`,
    `COALESCE(${a}.template_id, '')`,
    `COALESCE(${a}.topic, '')`,
    `COALESCE(${a}.from_domain, '')`,
    ...(grain === "quarter" ? [recipientDomain(a)] : []),
    sortedTags(`${a}.tags`),
  ].join(", ");
}

const isProxy = (a: string) => `json_extract(${a}.tracking, '$.bot') IS NOT NULL`;

/** The plain (non-unique) counters of one event row. */
function plainCounters(a: string): Partial<Record<MetricCounter, string>> {
  // One counter per event type (the map the hourly totals are read by), and three refinements.
  const values: Partial<Record<MetricCounter, string>> = {};
  for (const [type, counter] of Object.entries(COUNTER_OF_TYPE)) values[counter] = `(${a}.type = '${type}')`;
  return {
    ...values,
    bounced_permanent: `(${a}.type = 'email.bounced' AND ${a}.bounce_type = 'permanent')`,
    opened_by_proxy: `(${a}.type = 'email.opened' AND ${isProxy(a)})`,
    opened_by_person: `(${a}.type = 'email.opened' AND NOT ${isProxy(a)})`,
  };
}

/** The unique counters: each credits the earliest event of an (email_id, recipient) that matches. */
const UNIQUE: { counter: MetricCounter; matches: (a: string) => string }[] = [
  { counter: "unique_opened", matches: (a) => `${a}.type = 'email.opened'` },
  {
    counter: "unique_opened_by_person",
    matches: (a) => `${a}.type = 'email.opened' AND NOT ${isProxy(a)}`,
  },
  { counter: "unique_clicked", matches: (a) => `${a}.type = 'email.clicked'` },
];

const samePair = (a: string, b: string) =>
  `${a}.account_id = ${b}.account_id AND ${a}.email_id = ${b}.email_id AND ${a}.recipient = ${b}.recipient`;
const before = (a: string, b: string) => `(${a}.occurred_at, ${a}.id) < (${b}.occurred_at, ${b}.id)`;

/** True when no stored event of a's pair matching `matches` comes before a (a is the credited one). */
const earliestStored = (a: string, matches: (x: string) => string, exclude = "") =>
  `NOT EXISTS (SELECT 1 FROM events AS p INDEXED BY events_email_idx
     WHERE ${samePair("p", a)} AND ${matches("p")} AND ${before("p", a)}${exclude})`;

/** One contribution row: the key of `a` and a value per counter (0 where not given). */
type Contribution = (grain: Grain) => string;

function contribution(
  a: string,
  from: string,
  values: Partial<Record<MetricCounter, string>>,
  sign = 1,
): Contribution {
  const columns = METRIC_COUNTERS.map((c) => {
    const v = values[c];
    return v === undefined ? `0 AS ${c}` : `${sign} * COALESCE(${v}, 0) AS ${c}`;
  });
  return (grain) => `SELECT ${keyOf(a, grain)}, ${columns.join(", ")} FROM ${from}`;
}

/** A folded dimension's "no value" (kept as it is, never counted) and its folded value. */
const FOLD_OF: Record<(typeof FOLDED_DIMENSIONS)[number], { none: string; other: string }> = {
  campaign: { none: "''", other: `'${FOLDED_VALUE}'` },
  template_id: { none: "''", other: `'${FOLDED_VALUE}'` },
  topic: { none: "''", other: `'${FOLDED_VALUE}'` },
  tags: { none: "'[]'", other: `'${JSON.stringify([FOLDED_VALUE])}'` },
};
const dayOf = (a: string) => `${a}.bucket - ${a}.bucket % ${DAY_ROLLUP_MS}`;

/**
 * Folding (SPEC §15, FOLD_CAP in db/metrics.ts), as CTEs over `contrib`: for each folded dimension,
 * `fold_<dim>` maps each (account, UTC day, value) of the contributions to the value it is counted
 * under. The state is the day rollups themselves (no table written for it): a value already stored
 * on that account's day keeps its name; a new one keeps it while the day holds fewer than FOLD_CAP
 * values (new values ranked by name, so that every grain of a statement decides alike); the rest
 * are counted as FOLDED_VALUE. A value once kept stays kept and one once folded stays folded (the
 * count only grows), so a later removal or back-fill finds the row that counted it. Reads: the day
 * rows of the account days the batch touches, once per statement; rows written: none.
 */
function foldCtes(): string {
  const parts = [
    `fold_days AS MATERIALIZED (SELECT DISTINCT c.account_id, ${dayOf("c")} AS day FROM contrib AS c)`,
    `fold_kept AS MATERIALIZED (SELECT k.account_id, k.bucket AS day, ${FOLDED_DIMENSIONS.map((d) => `k.${d}`).join(", ")}
  FROM fold_days AS d JOIN metric_rollups_day AS k ON k.account_id = d.account_id AND k.bucket = d.day)`,
  ];
  for (const d of FOLDED_DIMENSIONS) {
    const { none, other } = FOLD_OF[d];
    const kept = `(x.v = ${none} OR s.v IS NOT NULL)`;
    parts.push(
      `fold_seen_${d} AS MATERIALIZED (SELECT DISTINCT account_id, day, ${d} AS v FROM fold_kept WHERE ${d} <> ${none})`,
      `fold_count_${d} AS MATERIALIZED (SELECT account_id, day, COUNT(*) AS n FROM fold_seen_${d} GROUP BY account_id, day)`,
      `fold_${d} AS MATERIALIZED (SELECT x.account_id, x.day, x.v, CASE
    WHEN ${kept} THEN x.v
    WHEN ROW_NUMBER() OVER (PARTITION BY x.account_id, x.day, ${kept} ORDER BY x.v) + COALESCE(n.n, 0) <= ${FOLD_CAP} THEN x.v
    ELSE ${other} END AS folded
  FROM (SELECT DISTINCT c.account_id, ${dayOf("c")} AS day, c.${d} AS v FROM contrib AS c) AS x
  LEFT JOIN fold_seen_${d} AS s ON s.account_id = x.account_id AND s.day = x.day AND s.v = x.v
  LEFT JOIN fold_count_${d} AS n ON n.account_id = x.account_id AND n.day = x.day)`,
    );
  }
  return parts.join(",\n");
}
const FOLD_CTES = foldCtes();

/** Sums contribution rows per key and adds them to the stored rows: one statement per grain. */
function upsert(ctes: string, contributions: Contribution[]): Record<Grain, string> {
  const sums = METRIC_COUNTERS.map((c) => `SUM(c.${c})`);
  const one = (grain: Grain) => {
    const key = KEY_COLUMNS_OF[grain];
    // The hourly totals and the domain rows have no dimension to fold; the other grains count a
    // folded value under FOLDED_VALUE, by the same rule in every grain.
    const folds = FOLDED_DIMENSIONS.filter((d) => key.includes(d));
    const keyExprs = key.map((k) => ((folds as readonly string[]).includes(k) ? `f_${k}.folded` : `c.${k}`));
    const joins = folds.map(
      (d) =>
        `JOIN fold_${d} AS f_${d} ON f_${d}.account_id = c.account_id AND f_${d}.day = ${dayOf("c")} AND f_${d}.v = c.${d}`,
    );
    return `WITH ${ctes},
contrib (${[...key, ...METRIC_COUNTERS].join(", ")}) AS (
  ${contributions.map((c) => c(grain)).join("\n  UNION ALL\n  ")}
)${folds.length ? `,\n${FOLD_CTES}` : ""}
INSERT INTO ${TABLE[grain]} (${[...key, ...METRIC_COUNTERS].join(", ")})
SELECT ${keyExprs.join(", ")}, ${sums.join(", ")}
FROM contrib AS c ${joins.join(" ")} WHERE true
GROUP BY ${key.map((_, i) => i + 1).join(", ")}
HAVING ${sums.map((s) => `${s} <> 0`).join(" OR ")}
ON CONFLICT (${key.join(", ")}) DO UPDATE SET
  ${METRIC_COUNTERS.map((c) => `${c} = ${c} + excluded.${c}`).join(",\n  ")}`;
  };
  return { quarter: one("quarter"), day: one("day"), domains: one("domains"), hour: one("hour") };
}

/** One statement per grain, bound to the same parameters. */
const everyGrain = (
  db: D1Database,
  sql: Record<Grain, string>,
  ...params: unknown[]
): D1PreparedStatement[] => GRAINS.map((grain) => db.prepare(sql[grain]).bind(...params));

/** The stored events of the pairs (email_id, recipient) found in `src`, as candidates for a unique credit. */
const pairEvents = (src: string, exclude = "") =>
  `(SELECT DISTINCT s.* FROM ${src} AS c JOIN events AS s INDEXED BY events_email_idx
     ON ${samePair("s", "c")} AND s.type IN ('email.opened', 'email.clicked')${exclude}) AS s`;

/**
 * New events: the JSON chunk the consumer binds to its events insert (rows with `tags` and
 * `tracking` as JSON text). Dimensions are enriched from the registration exactly as the insert
 * does, so the counted key is the stored one. D1 allows only a few terms in a compound SELECT, so
 * each source of rows is one SELECT whose columns carry every counter.
 */
const NEW_EVENTS = (() => {
  const batch = `b AS (SELECT ${[
    "account_id",
    "occurred_at",
    "id",
    "type",
    "email_id",
    "recipient",
    "bounce_type",
    "tracking",
    "campaign",
    "template_id",
    "topic",
    "from_domain",
    "tags",
  ]
    .map((f) => `${j(f)} AS ${f}`)
    .join(", ")} FROM json_each(?1))`;
  // Enriched and first arrivals only, exactly as the events insert (store/event-writes.ts) does.
  const fresh = `n AS MATERIALIZED (
  SELECT b.account_id, b.occurred_at, b.id, b.type, b.email_id, b.recipient, b.bounce_type, b.tracking,
    ${KEY_DIMENSIONS.map((d) => `${fill(d, `b.${col(d)}`, `m.${col(d)}`)} AS ${d}`).join(",\n    ")}
  FROM b LEFT JOIN ${registrationOf("b")}
  WHERE ${firstArrival("b")})`;
  // A new event takes the credit when it is the earliest new one of its pair and earlier than every
  // stored one; the stored event that held the credit until then (it is later) gives it up.
  const credited = (c: string, matches: (a: string) => string) =>
    `(${matches(c)}
      AND NOT EXISTS (SELECT 1 FROM n AS c2 WHERE ${samePair("c2", c)} AND ${matches("c2")} AND ${before("c2", c)})
      AND ${earliestStored(c, matches)})`;
  const gains: Partial<Record<MetricCounter, string>> = { ...plainCounters("n") };
  const losses: Partial<Record<MetricCounter, string>> = {};
  for (const { counter, matches } of UNIQUE) {
    gains[counter] = credited("n", matches);
    losses[counter] = `(${matches("s")} AND ${earliestStored("s", matches)}
      AND EXISTS (SELECT 1 FROM n AS c WHERE ${samePair("c", "s")} AND ${credited("c", matches)}))`;
  }
  return upsert(`${batch},\n${fresh}`, [
    contribution("n", "n", gains),
    contribution("s", pairEvents("n"), losses, -1),
  ]);
})();

/** Counts the first arrivals of a chunk of event rows; run them just before the chunk's insert. */
export function newEventsRollup(db: D1Database, chunk: string): D1PreparedStatement[] {
  return everyGrain(db, NEW_EVENTS, chunk);
}

/** Every contribution of the stored events `a` (plain and, where credited, unique). */
function storedCounters(a: string, exclude = ""): Partial<Record<MetricCounter, string>> {
  const values = { ...plainCounters(a) };
  for (const { counter, matches } of UNIQUE) {
    values[counter] = `(${matches(a)} AND ${earliestStored(a, matches, exclude)})`;
  }
  return values;
}

const BACKFILL = (() => {
  const dims = KEY_DIMENSIONS;
  // The back-fill's own rules (store/event-writes.ts): a gap filled from the registration.
  const changed = `ch AS MATERIALIZED (
  SELECT e.account_id, e.occurred_at, e.id, e.type, e.email_id, e.recipient, e.bounce_type, e.tracking,
    ${dims.map((d) => `e.${d} AS ${d}`).join(", ")},
    ${dims.map((d) => `${fill(d, `e.${col(d)}`, `m.${col(d)}`)} AS new_${d}`).join(",\n    ")}
  FROM events AS e INDEXED BY events_email_idx
  JOIN messages AS m ON m.account_id = ?1 AND m.email_id = ?2
  WHERE e.account_id = ?1 AND e.email_id = ?2
    AND (${dims.map((d) => gap(d, `e.${col(d)}`, `m.${col(d)}`)).join(" OR ")}))`;
  const moved = `mv AS (SELECT account_id, occurred_at, id, type, email_id, recipient, bounce_type, tracking,
    ${dims.map((d) => `new_${d} AS ${d}`).join(", ")} FROM ch)`;
  return upsert(`${changed},\n${moved}`, [
    contribution("ch", "ch", storedCounters("ch"), -1),
    contribution("mv", "mv", storedCounters("mv"), 1),
  ]);
})();

/**
 * A registration is about to back-fill the dimensions of its email's stored events: move their
 * contributions to the keys they will have. Run it just before the back-fill, after the message
 * upsert.
 */
export function backfillRollup(db: D1Database, accountId: string, emailId: string): D1PreparedStatement[] {
  return everyGrain(db, BACKFILL, accountId, emailId);
}

const REMOVED = (() => {
  const keys = `d AS (SELECT ${j("account_id")} AS account_id, ${j("occurred_at")} AS occurred_at, ${j("id")} AS id
  FROM json_each(?1))`;
  const gone = `g AS MATERIALIZED (SELECT e.* FROM d JOIN events AS e
  ON e.account_id = d.account_id AND e.occurred_at = d.occurred_at AND e.id = d.id)`;
  const notGone = (a: string) =>
    `NOT EXISTS (SELECT 1 FROM d WHERE d.account_id = ${a}.account_id AND d.occurred_at = ${a}.occurred_at AND d.id = ${a}.id)`;
  // Where a removed event held a unique credit, the earliest remaining event of its pair takes it.
  const successors: Partial<Record<MetricCounter, string>> = {};
  for (const { counter, matches } of UNIQUE) {
    successors[counter] = `(${matches("s")} AND ${earliestStored("s", matches, ` AND ${notGone("p")}`)}
      AND EXISTS (SELECT 1 FROM g AS c WHERE ${samePair("c", "s")} AND ${matches("c")} AND ${earliestStored("c", matches)}))`;
  }
  return upsert(`${keys},\n${gone}`, [
    contribution("g", "g", storedCounters("g"), -1),
    contribution("s", pairEvents("g", ` AND ${notGone("s")}`), successors),
  ]);
})();

/**
 * Stored events (by primary key) are about to be deleted for good (not purged: the purge keeps
 * their metrics). Takes back their contribution, moving a unique credit they held to the earliest
 * remaining event of the pair. Run it in the same batch, just before the DELETE.
 */
export function removedEventsRollup(
  db: D1Database,
  keys: { account_id: string; occurred_at: number; id: string }[],
): D1PreparedStatement[] {
  return everyGrain(db, REMOVED, JSON.stringify(keys));
}

const REBUILD = upsert(
  "e AS (SELECT * FROM events WHERE account_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3)",
  [contribution("e", "e", storedCounters("e"))],
);

/** Deletes an account's metric rollups of every grain, before a rebuild (rebuildRollups). */
export function clearRollups(db: D1Database, accountId: string): D1PreparedStatement[] {
  return GRAINS.map((grain) =>
    db.prepare(`DELETE FROM ${TABLE[grain]} WHERE account_id = ?1`).bind(accountId),
  );
}

/**
 * Adds to an account's rollups the contributions of its stored events in [start, end): after
 * clearRollups, ranges that cover the account's events once rebuild it (each range's rows fall in
 * its own buckets when ranges are cut on UTC days; a unique credit looks at the pair's every stored
 * event, whatever the range). A range bounds one statement's work, so a large account is rebuilt a
 * day at a time.
 */
export function rebuildRollupsRange(
  db: D1Database,
  accountId: string,
  start: number,
  end: number,
): D1PreparedStatement[] {
  return everyGrain(db, REBUILD, accountId, start, end);
}

/**
 * Recomputes an account's rollups from its stored events: the one-time back-fill for events stored
 * before metrics existed (run once per account after the migration, before the purge removes
 * them), and the benchmark's way to roll up its bulk-loaded dataset. Replaces the account's
 * rollups, so only for accounts whose every counted event is still stored.
 */
export function rebuildRollups(db: D1Database, accountId: string): D1PreparedStatement[] {
  return [...clearRollups(db, accountId), ...rebuildRollupsRange(db, accountId, 0, Number.MAX_SAFE_INTEGER)];
}
