/** Width of a rollup bucket. Every UTC offset in tzdb today is a multiple of 15 minutes. */
export const ROLLUP_BUCKET_MS = 15 * 60_000;
/** Width of a coarse rollup bucket (metric_rollups_day): a UTC day. */
export const DAY_ROLLUP_MS = 24 * 60 * 60_000;
/** Width of an account-total rollup bucket (metric_rollups_hour): a UTC hour. */
export const HOUR_ROLLUP_MS = 60 * 60_000;

/**
 * Folding (SPEC §15): past FOLD_CAP distinct values of a dimension per account and UTC day, the
 * rollups count further values as FOLDED_VALUE (a tag set as `["(other)"]`). Campaigns, templates,
 * topics and tag sets fold; sending domains (few and verified) and recipient domains do not.
 */
export const FOLD_CAP = 100;
export const FOLDED_VALUE = "(other)";
export const FOLDED_DIMENSIONS = ["campaign", "template_id", "topic", "tags"] as const;

/** The counters of SPEC §15, in the order they are stored, summed and answered. */
export const METRIC_COUNTERS = [
  "sent",
  "delivered",
  "delayed",
  "bounced",
  "bounced_permanent",
  "complained",
  "unsubscribed",
  "suppressed",
  "failed",
  "opened",
  "opened_by_proxy",
  "opened_by_person",
  "unique_opened",
  "unique_opened_by_person",
  "clicked",
  "unique_clicked",
] as const;
export type MetricCounter = (typeof METRIC_COUNTERS)[number];

/** The rollup key (db/metric-rollups.ts): the account, the bucket and every dimension GET /v1/metrics filters or groups by. */
export const ROLLUP_KEY_COLUMNS = [
  "account_id",
  "bucket",
  "campaign",
  "template_id",
  "topic",
  "from_domain",
  "recipient_domain",
  "tags",
] as const;

/**
 * The key of the daily recipient-domain rollups (db/metric-rollups.ts): the sending and the
 * recipient domain, nothing else.
 */
export const DAY_DOMAINS_ROLLUP_KEY_COLUMNS = [
  "account_id",
  "bucket",
  "from_domain",
  "recipient_domain",
] as const;

/** The key of the coarse daily rollups (db/metric-rollups.ts): no recipient domain. */
export const DAY_ROLLUP_KEY_COLUMNS = [
  "account_id",
  "bucket",
  "campaign",
  "template_id",
  "topic",
  "from_domain",
  "tags",
] as const;

/** The key of the hourly account totals (db/metric-rollups.ts): no dimension at all. */
export const HOUR_ROLLUP_KEY_COLUMNS = ["account_id", "bucket"] as const;

/** The key of the link rollups (db/metric-rollups.ts). */
export const LINK_ROLLUP_KEY_COLUMNS = [
  "account_id",
  "day",
  "url",
  "link_name",
  "campaign",
  "template_id",
  "topic",
  "from_domain",
  "tags",
  "mailbox_provider",
] as const;
