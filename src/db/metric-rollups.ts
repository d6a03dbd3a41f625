import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import type { MetricCounter } from "./metrics";

const counter = (name: MetricCounter) => integer(name).notNull().default(0);

/** The SPEC §15 counters as columns (METRIC_COUNTERS), fresh builders for each table that holds them. */
const counters = () => ({
  sent: counter("sent"),
  delivered: counter("delivered"),
  delayed: counter("delayed"),
  bounced: counter("bounced"),
  bouncedPermanent: counter("bounced_permanent"),
  complained: counter("complained"),
  unsubscribed: counter("unsubscribed"),
  suppressed: counter("suppressed"),
  failed: counter("failed"),
  opened: counter("opened"),
  openedByProxy: counter("opened_by_proxy"),
  openedByPerson: counter("opened_by_person"),
  uniqueOpened: counter("unique_opened"),
  uniqueOpenedByPerson: counter("unique_opened_by_person"),
  clicked: counter("clicked"),
  uniqueClicked: counter("unique_clicked"),
});

/**
 * Metrics rollups (SPEC §15): one row per account, 15-minute UTC bucket and combination of the
 * dimensions that GET /v1/metrics filters or groups by, with every counter as a column. Kept 400
 * days, whatever the plan's event retention.
 *
 * - 15 minutes, not an hour: a day, week or month in Asia/Kolkata (+05:30), Asia/Kathmandu (+05:45)
 *   or Australia/Eucla (+08:45) starts on a quarter hour of UTC, and so does every DST change, so
 *   every bucket of every zone is an exact union of 15-minute buckets (metrics/buckets.ts).
 * - Every dimension is in the key (NULL stored as ''), tags as their sorted set: any filter with
 *   any grouping is answered exactly from these rows alone. An event with several tags is one row
 *   (its tag set), so `group_by=tag` expands the set at query time without counting it twice here.
 * - Cost: WITHOUT ROWID (scripts/without-rowid.mjs) and no secondary index, so one upserted key is
 *   one row written. The consumer sums a batch's events per key before it writes, so a batch costs
 *   one row per distinct (bucket, dimensions) it touches: at most 1 row per event, far fewer when
 *   a campaign's events share a quarter hour (BENCHMARKS.md measures the realistic mix).
 */
export const metricRollups = sqliteTable(
  "metric_rollups",
  {
    accountId: text("account_id").notNull(),
    /** Epoch ms of the bucket's start: occurred_at rounded down to ROLLUP_BUCKET_MS. */
    bucket: integer("bucket").notNull(),
    campaign: text("campaign").notNull(),
    templateId: text("template_id").notNull(),
    topic: text("topic").notNull(),
    fromDomain: text("from_domain").notNull(),
    recipientDomain: text("recipient_domain").notNull(),
    /** The event's tags as a sorted JSON array; '[]' when none. */
    tags: text("tags").notNull(),
    ...counters(),
  },
  (t) => [
    primaryKey({
      columns: [
        t.accountId,
        t.bucket,
        t.campaign,
        t.templateId,
        t.topic,
        t.fromDomain,
        t.recipientDomain,
        t.tags,
      ],
    }),
  ],
);

/**
 * Coarse metrics rollups: one row per account, UTC day and combination of the dimensions but the
 * recipient domain, with the same counters, written by the same statements as metric_rollups (one
 * more statement per write, metrics/rollup.ts). A day, not an hour: at the densities measured
 * (BENCHMARKS.md) an hour row holds few quarter-hour rows, so it saved little to read and cost as
 * much to write; a day row folds a whole day. The recipient domain is the key's largest multiplier and
 * most queries never need it. A query by day, week or month in UTC (the default zone) that neither
 * groups nor filters by the recipient domain or the mailbox provider reads the whole UTC days of its
 * window here and only the partial days at its edges from metric_rollups (metrics/query.ts). Kept
 * 400 days with metric_rollups.
 *
 * Cost: WITHOUT ROWID, no secondary index; a batch's events sum per key before the write, so one row
 * written per distinct (day, campaign, template, topic, sending domain, tag set) the batch touches:
 * BENCHMARKS.md gives the share per event (all rollup tables together must stay under 1.0).
 */
export const metricRollupsDay = sqliteTable(
  "metric_rollups_day",
  {
    accountId: text("account_id").notNull(),
    /** Epoch ms of the UTC day. */
    bucket: integer("bucket").notNull(),
    campaign: text("campaign").notNull(),
    templateId: text("template_id").notNull(),
    topic: text("topic").notNull(),
    fromDomain: text("from_domain").notNull(),
    tags: text("tags").notNull(),
    ...counters(),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.bucket, t.campaign, t.templateId, t.topic, t.fromDomain, t.tags] }),
  ],
);

/**
 * Daily recipient-domain rollups: one row per account, UTC day, sending domain and recipient domain,
 * with the same counters, written by the same statements as metric_rollups (one more statement per
 * write, store/rollups.ts). They answer what needs the recipient domain but none of the other
 * dimensions, over whole UTC days: GET /v1/reputation (SPEC §19: per mailbox provider, optionally
 * for one sending domain), alert rules filtered by domain or provider alone, and GET /v1/metrics
 * grouped by recipient domain or mailbox provider (or filtered by provider) in UTC days, weeks and
 * months. The provider is still attributed at query time from the recipient domain, as for
 * metric_rollups, so a custom domain learned later is attributed over its whole history. Without
 * them those questions read the quarter-hour rows (every other dimension times the recipient
 * domain, about 2,300 a day for the benchmark's largest account), and the largest account's 7-day
 * reputation passed §18's budget.
 *
 * Cost: WITHOUT ROWID, no secondary index; a batch's events sum per key before the write, so one row
 * written per distinct (account, day, sending domain, recipient domain) the batch touches, never
 * more than the quarter-hour table's rows for the same batch (BENCHMARKS.md gives the share per
 * event). Stored: one row per account, day and domain pair, about 90 bytes. Kept 400 days with
 * metric_rollups; not folded (sending domains are few and verified; recipient domains are what the
 * table is for).
 */
export const metricRollupsDayDomains = sqliteTable(
  "metric_rollups_day_domains",
  {
    accountId: text("account_id").notNull(),
    /** Epoch ms of the UTC day. */
    bucket: integer("bucket").notNull(),
    fromDomain: text("from_domain").notNull(),
    recipientDomain: text("recipient_domain").notNull(),
    ...counters(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.bucket, t.fromDomain, t.recipientDomain] })],
);

/**
 * Hourly account totals: one row per account and UTC hour with every counter, no dimension, written
 * by the same statements as metric_rollups (one more statement per write, store/rollups.ts). They
 * bound what an unfiltered, ungrouped question costs, whatever the account's mix: a chart of the
 * whole account over 400 days by the hour reads at most 9,600 rows (SPEC §18), a day or a month at
 * most as many, in any zone whose offsets are whole hours over the window (UTC, the Americas,
 * Europe, most of Asia); a zone at a half or quarter hour (Asia/Kolkata) reads the quarter hours.
 * The totals of GET /v1/events and the compatibility routes when only the window and event types
 * filter them, and the position of a deep offset page, come from here too (store/hour-totals.ts):
 * within raw-event retention each counter is the number of stored events of its type in the hour.
 *
 * Cost: WITHOUT ROWID, no secondary index; the consumer sums a batch per key, so a batch writes one
 * row per account and hour it touches: about 0.01 rows per event for an account sending steadily
 * (a batch of 100 messages is mostly one hour of one account), at most 1 for a trickle. 400 days of
 * one account are 9,600 rows of about 60 bytes.
 */
export const metricRollupsHour = sqliteTable(
  "metric_rollups_hour",
  {
    accountId: text("account_id").notNull(),
    /** Epoch ms of the UTC hour. */
    bucket: integer("bucket").notNull(),
    ...counters(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.bucket] })],
);

/**
 * The account days on which the rollups folded a value (FOLD_CAP in db/metrics.ts): GET /v1/metrics
 * answers `"folded": true` when its window holds one and it groups or filters by a folded dimension.
 * Written by a trigger on metric_rollups_day (migrations/0010), when a day row of a folded value is
 * first inserted, so only accounts past the cap ever write here: at most one row per account and
 * day, none for an account that never folds. Kept 400 days with the rollups.
 */
export const rollupFolds = sqliteTable(
  "rollup_folds",
  {
    accountId: text("account_id").notNull(),
    /** Epoch ms of the UTC day. */
    day: integer("day").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.day] })],
);

/**
 * Clicks per link (SPEC §15 GET /v1/metrics/links): one row per account, UTC day, link (url and
 * link name) and the dimensions the links route filters by, with three counters. Kept 400 days
 * like metric_rollups (purged with them).
 *
 * - A day, not a quarter hour: links are asked over days (1-400), and a 400-day answer must read
 *   within §18's 10,000 rows; the window is widened to whole UTC days (the response says which).
 * - `mailbox_provider` is resolved when the click is written (a consumer domain's provider, else the
 *   one learned for the recipient's domain, else other), so the table needs no recipient domain.
 * - Cost: WITHOUT ROWID, no secondary index; the consumer sums a batch's clicks per key, so at most
 *   one row written per click and far fewer (clicks of one campaign's link on one day share a row).
 *   Only clicks write here (a few per cent of events): BENCHMARKS.md gives rows per event.
 */
export const linkRollups = sqliteTable(
  "link_rollups",
  {
    accountId: text("account_id").notNull(),
    /** Epoch ms of the UTC day. */
    day: integer("day").notNull(),
    url: text("url").notNull(),
    /** The link's name ('' when none). */
    linkName: text("link_name").notNull(),
    campaign: text("campaign").notNull(),
    templateId: text("template_id").notNull(),
    topic: text("topic").notNull(),
    fromDomain: text("from_domain").notNull(),
    tags: text("tags").notNull(),
    mailboxProvider: text("mailbox_provider").notNull(),
    clicked: counter("clicked"),
    uniqueClicked: counter("unique_clicked"),
    clickedByPerson: integer("clicked_by_person").notNull().default(0),
  },
  (t) => [
    primaryKey({
      columns: [
        t.accountId,
        t.day,
        t.url,
        t.linkName,
        t.campaign,
        t.templateId,
        t.topic,
        t.fromDomain,
        t.tags,
        t.mailboxProvider,
      ],
    }),
  ],
);
