import * as z from "zod";
import { METRIC_COUNTERS, type MetricCounter, ROLLUP_BUCKET_MS } from "../db/metrics";
import { HOSTNAME, parseTimestamp } from "../events/query";
import { TAG_PATTERN, TOPIC_PATTERN } from "../events/record";
import { validationError } from "../lib/errors";
import { zodToApiError } from "../lib/http";
import { DAY_MS } from "../lib/params";
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

const timestamp = (name: "start" | "end") =>
  z
    .string()
    .transform((value, ctx) => {
      try {
        return parseTimestamp(name, value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    })
    .optional()
    .meta({ description: `ISO 8601; ${name === "start" ? "inclusive" : "exclusive"}` });

const exactText = (name: string, description: string) =>
  z
    .string()
    .trim()
    .min(1, `${name} must not be empty`)
    .max(256, `${name} must be at most 256 characters`)
    .optional()
    .meta({ description });

export const metricsQuerySchema = z.object({
  start: timestamp("start"),
  end: timestamp("end"),
  days: z
    .string()
    .regex(/^\d{1,3}$/, `days must be an integer from 1 to ${MAX_DAYS}`)
    .transform(Number)
    .refine((n) => n >= 1 && n <= MAX_DAYS, `days must be an integer from 1 to ${MAX_DAYS}`)
    .optional()
    .meta({ description: `1-${MAX_DAYS}: start = now - days; not with start` }),
  interval: z
    .enum(INTERVALS, { error: `interval must be one of ${INTERVALS.join(", ")}` })
    .default("day")
    .meta({ description: "bucket size: hour, day (default), week (from Monday) or month" }),
  tz: z
    .string()
    .default("UTC")
    .transform((tz, ctx) => {
      // Answered as given: ICU would rename some zones (Asia/Kathmandu to Asia/Katmandu).
      if (canonicalTimeZone(tz) === null) {
        ctx.addIssue({ code: "custom", message: "tz must be an IANA time zone such as Europe/Paris" });
        return z.NEVER;
      }
      return tz;
    })
    .meta({ description: "IANA time zone the buckets are aligned to (default UTC)" }),
  group_by: z
    .enum(GROUP_BY, { error: `group_by must be one of ${GROUP_BY.join(", ")}` })
    .optional()
    .meta({ description: "none (default) or one dimension; an event with several tags counts in each tag" }),
  campaign: exactText("campaign", "exact, case-sensitive"),
  template_id: exactText("template_id", "exact"),
  topic: z
    .string()
    .regex(TOPIC_PATTERN, "topic must be 1-64 characters of [a-z0-9_.-]")
    .optional()
    .meta({ description: "exact" }),
  domain: z
    .string()
    .trim()
    .toLowerCase()
    .regex(HOSTNAME, "domain must be a hostname such as mail.example.com")
    .optional()
    .meta({ description: "a sending domain (from_domain) the account has sent from" }),
  tags: z
    .string()
    .transform((value, ctx) => {
      const items = [...new Set(value.split(",").map((s) => s.trim()))];
      if (items.some((s) => s === "")) {
        ctx.addIssue({ code: "custom", message: "tags must be a comma-separated list without empty items" });
      } else if (items.length > 10) {
        ctx.addIssue({ code: "custom", message: "tags takes at most 10 values" });
      } else if (!items.every((t) => TAG_PATTERN.test(t))) {
        ctx.addIssue({ code: "custom", message: "tags are 1-64 characters of [A-Za-z0-9_-]" });
      }
      return items;
    })
    .optional()
    .meta({ description: "events carrying any of up to 10 comma-separated tags" }),
  mailbox_provider: z
    .enum(MAILBOX_PROVIDERS, { error: `mailbox_provider must be one of ${MAILBOX_PROVIDERS.join(", ")}` })
    .optional()
    .meta({ description: "the receiving mailbox provider" }),
  account_id: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .meta({ description: "admin tokens only: the account to read" }),
});
export type MetricsQuery = z.output<typeof metricsQuerySchema>;

const KNOWN = new Set(Object.keys(metricsQuerySchema.shape));

export function parseMetricsQuery(params: URLSearchParams): MetricsQuery {
  const raw: Record<string, string> = {};
  for (const [name, value] of params) {
    if (!KNOWN.has(name)) throw validationError(name, `unknown parameter ${name}`);
    if (name in raw) throw validationError(name, `${name} may be given once`);
    raw[name] = value;
  }
  const parsed = metricsQuerySchema.safeParse(raw);
  if (!parsed.success) throw zodToApiError(parsed.error);
  const q = parsed.data;
  if (q.days !== undefined && q.start !== undefined)
    throw validationError("days", "days cannot be combined with start");
  if (q.start !== undefined && q.end !== undefined && q.start > q.end)
    throw validationError("start", "start must not be after end");
  return q;
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
