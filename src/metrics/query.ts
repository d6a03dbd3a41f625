import * as z from "zod";
import { METRIC_COUNTERS, type MetricCounter, ROLLUP_BUCKET_MS } from "../db/metrics";
import { checkWindowParams, HOSTNAME } from "../events/query";
import { MAX_TAGS } from "../events/record";
import { validationError } from "../lib/errors";
import {
  accountIdParam,
  DAY_MS,
  exactParam,
  integerParam,
  listParam,
  tagParam,
  timestampParam,
  topicParam,
} from "../lib/params";
import { parseQuery } from "../lib/validate";
import { MAILBOX_PROVIDERS } from "../mailbox/providers";
import { canonicalTimeZone, INTERVALS, type Interval } from "./buckets";

/**
 * GET /v1/metrics parameters (SPEC §15): one zod schema documents them (OpenAPI) and validates
 * them, every fault a 400 naming its parameter. Also the window rule and the rollup SQL.
 */

export const MAX_DAYS = 400;
const DEFAULT_DAYS = 7;

export const GROUP_BY = [
  "campaign",
  "template_id",
  "topic",
  "domain",
  "recipient_domain",
  "mailbox_provider",
  "tag",
] as const;
export type GroupBy = (typeof GROUP_BY)[number];

/** The rollup column of each grouping (tag is expanded from the tag set). */
export const GROUP_COLUMN: Record<Exclude<GroupBy, "tag" | "mailbox_provider">, string> = {
  campaign: "campaign",
  template_id: "template_id",
  topic: "topic",
  domain: "from_domain",
  recipient_domain: "recipient_domain",
};

/**
 * A time zone name as the IANA database spells it (`UTC`, `Europe/Paris`, `America/Argentina/Salta`),
 * case-insensitive as ICU reads it. The pattern is the document's rule; that the zone exists is
 * checked against the runtime's ICU (named in the parameter's description).
 */
export const TIME_ZONE_PATTERN = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/;

export const metricsQuerySchema = z.object({
  start: timestampParam.optional().meta({ description: "inclusive" }),
  end: timestampParam.optional().meta({ description: "exclusive" }),
  days: integerParam(1, MAX_DAYS)
    .optional()
    .meta({ description: `1-${MAX_DAYS}: start = now - days; not with start` }),
  interval: z
    .enum(INTERVALS, { error: `must be one of ${INTERVALS.join(", ")}` })
    .default("day")
    .meta({ description: "bucket size: hour, day (default), week (from Monday) or month" }),
  tz: z
    .string()
    .regex(TIME_ZONE_PATTERN, "must be an IANA time zone such as Europe/Paris")
    // Answered as given: ICU would rename some zones (Asia/Kathmandu to Asia/Katmandu).
    .refine((tz) => canonicalTimeZone(tz) !== null, "must be an IANA time zone such as Europe/Paris")
    .default("UTC")
    .meta({
      description:
        "a time zone of the IANA database (its name, any case) that buckets are aligned to; default UTC",
      examples: ["UTC", "Europe/Paris", "America/New_York", "Asia/Kathmandu"],
    }),
  group_by: z
    .enum(GROUP_BY, { error: `must be one of ${GROUP_BY.join(", ")}` })
    .optional()
    .meta({ description: "none (default) or one dimension; an event with several tags counts in each tag" }),
  campaign: exactParam(256).optional().meta({ description: "exact, case-sensitive" }),
  template_id: exactParam(256).optional().meta({ description: "exact" }),
  topic: topicParam.optional().meta({ description: "exact" }),
  domain: z
    .string()
    .trim()
    .toLowerCase()
    .regex(HOSTNAME, "must be a hostname such as mail.example.com")
    .optional()
    .meta({
      description:
        "a sending domain (from_domain) the account has sent from (another one is 400 naming domain)",
    }),
  tags: listParam(MAX_TAGS, tagParam)
    .optional()
    .meta({ description: `events carrying any of these tags (at most ${MAX_TAGS})` }),
  mailbox_provider: z
    .enum(MAILBOX_PROVIDERS, { error: `must be one of ${MAILBOX_PROVIDERS.join(", ")}` })
    .optional()
    .meta({ description: "the receiving mailbox provider (google, microsoft, yahoo, apple, other)" }),
  account_id: accountIdParam,
});
export type MetricsQuery = z.output<typeof metricsQuerySchema>;

/** The rules between fields: `days` not with `start`, `start` not after `end`. */
export function checkMetricsQuery(q: MetricsQuery): MetricsQuery {
  checkWindowParams(q);
  return q;
}

/** A metrics query from query text, for the internal readers (reputation, alerts, Unosend, links). */
export function parseMetricsParams(params: URLSearchParams): MetricsQuery {
  return checkMetricsQuery(parseQuery(metricsQuerySchema, params));
}

export interface MetricsWindow {
  start: number;
  end: number;
  clamped: boolean;
}

const floorGrid = (t: number) => Math.floor(t / ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS;
const ceilGrid = (t: number) => Math.ceil(t / ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS;

/**
 * The window the rollups answer: the request's (default the last 7 days; `end` alone means the 7
 * days before it), widened outwards to the 15-minute grid the rollups are stored on (start
 * rounded down, end rounded up; the response says which window was counted), then clamped
 * silently to the last 400 days.
 */
export function metricsWindow(q: MetricsQuery, now: number): MetricsWindow {
  const end = q.end ?? now;
  const start = q.start ?? (q.days !== undefined ? now - q.days * DAY_MS : end - DEFAULT_DAYS * DAY_MS);
  if (start > end) {
    const param = q.start !== undefined ? "start" : q.days !== undefined ? "days" : "end";
    throw validationError(param, "the window's start is after its end");
  }
  const earliest = floorGrid(now - MAX_DAYS * DAY_MS);
  const s = floorGrid(start);
  const e = ceilGrid(end);
  if (s >= earliest) return { start: s, end: e, clamped: false };
  return { start: earliest, end: Math.max(e, earliest), clamped: true };
}

export type Counters = Record<MetricCounter, number>;

/** One local bucket and group, summed in SQL; `first` is its earliest rollup bucket. */
export interface RollupRow extends Counters {
  first: number;
  grp: string | null;
}

export const RATES = {
  delivery_rate: ["delivered", "sent"],
  bounce_rate: ["bounced", "sent"],
  complaint_rate: ["complained", "delivered"],
  open_rate: ["unique_opened", "delivered"],
  person_open_rate: ["unique_opened_by_person", "delivered"],
  click_rate: ["unique_clicked", "delivered"],
} as const satisfies Record<string, readonly [MetricCounter, MetricCounter]>;
export type RateName = keyof typeof RATES;

export function ratesOf(c: Counters): Record<RateName, number | null> {
  const out = {} as Record<RateName, number | null>;
  for (const [name, [num, den]] of Object.entries(RATES) as [
    RateName,
    readonly [MetricCounter, MetricCounter],
  ][]) {
    out[name] = c[den] === 0 ? null : Math.round((c[num] / c[den]) * 1e6) / 1e6;
  }
  return out;
}

export function zeroCounters(): Counters {
  return Object.fromEntries(METRIC_COUNTERS.map((c) => [c, 0])) as Counters;
}

export function addCounters(into: Counters, from: Counters): void {
  for (const c of METRIC_COUNTERS) into[c] += from[c] ?? 0;
}

export const isEmpty = (c: Counters) => METRIC_COUNTERS.every((k) => c[k] === 0);

export type { Interval };
