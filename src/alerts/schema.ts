import * as z from "zod";
import type { AlertRow, AlertRuleRow } from "../db/alerts";
import { HOSTNAME } from "../events/query";
import { MAILBOX_PROVIDERS } from "../mailbox/providers";
import { RATE_METRICS } from "../reputation/rates";

/** Public shapes and request bodies of the alert routes (SPEC §19). */

export const ALERT_WINDOWS = ["1h", "24h", "7d"] as const;
export type AlertWindow = (typeof ALERT_WINDOWS)[number];
export const WINDOW_MS: Record<AlertWindow, number> = {
  "1h": 3_600_000,
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
};
export const ALERT_TYPES = ["alert.triggered", "alert.resolved"] as const;
export type AlertType = (typeof ALERT_TYPES)[number];
export const DEFAULT_MIN_SENT = 100;

export const alertFiltersSchema = z
  .object({
    domain: z
      .string()
      .trim()
      .toLowerCase()
      .regex(HOSTNAME, "domain must be a hostname such as mail.example.com")
      .optional(),
    campaign: z.string().min(1).max(256).optional(),
    mailbox_provider: z.enum(MAILBOX_PROVIDERS).optional(),
  })
  .strict()
  .meta({
    id: "AlertFilters",
    description: "Exact matches as in GET /v1/metrics; every given filter applies",
  });
export type AlertFilters = z.output<typeof alertFiltersSchema>;

const thresholdField = z.number().min(0).max(1).meta({ description: "a fraction: 0.05 is 5 %" });
const descriptionField = z.string().max(500).nullable();

export const createRuleSchema = z
  .object({
    metric: z.enum(RATE_METRICS),
    threshold: thresholdField,
    window: z.enum(ALERT_WINDOWS),
    min_sent: z.number().int().min(1).max(10_000_000).optional().meta({ description: "default 100" }),
    filters: alertFiltersSchema.optional(),
    description: descriptionField.optional(),
  })
  .strict()
  .meta({ id: "CreateAlertRule" });

export const patchRuleSchema = z
  .object({
    metric: z.enum(RATE_METRICS).optional(),
    threshold: thresholdField.optional(),
    window: z.enum(ALERT_WINDOWS).optional(),
    min_sent: z.number().int().min(1).max(10_000_000).optional(),
    filters: alertFiltersSchema
      .optional()
      .meta({ description: "replaces the filters as a whole; {} removes them" }),
    description: descriptionField.optional(),
  })
  .strict()
  .meta({ id: "UpdateAlertRule" });
export type PatchRule = z.output<typeof patchRuleSchema>;

export const ruleSchema = z
  .object({
    id: z.string().meta({ description: "alr_…" }),
    object: z.literal("alert_rule"),
    metric: z.enum(RATE_METRICS),
    threshold: z.number(),
    window: z.enum(ALERT_WINDOWS),
    min_sent: z.number().int(),
    filters: z.object({
      domain: z.string().optional(),
      campaign: z.string().optional(),
      mailbox_provider: z.enum(MAILBOX_PROVIDERS).optional(),
    }),
    description: z.string().nullable(),
    state: z.enum(["ok", "firing"]),
    last_value: z.number().nullable(),
    last_evaluated_at: z.string().nullable().meta({ format: "date-time" }),
    created_at: z.string().meta({ format: "date-time" }),
  })
  .meta({ id: "AlertRule" });
export type PublicRule = z.infer<typeof ruleSchema>;

export const ruleListSchema = z
  .object({ object: z.literal("list"), data: z.array(ruleSchema) })
  .meta({ id: "AlertRuleList" });

export const deletedRuleSchema = z
  .object({ deleted: z.literal(true), id: z.string() })
  .meta({ id: "AlertRuleDeleted" });

export const alertSchema = z
  .object({
    id: z.string().meta({ description: "alt_…, also the webhook-id of its delivery" }),
    object: z.literal("alert"),
    rule_id: z.string(),
    type: z.enum(ALERT_TYPES),
    metric: z.enum(RATE_METRICS),
    value: z.number(),
    threshold: z.number(),
    window: z.object({
      start: z.string().meta({ format: "date-time" }),
      end: z.string().meta({ format: "date-time" }),
      sent: z.number().int(),
    }),
    filters: ruleSchema.shape.filters,
    occurred_at: z.string().meta({ format: "date-time" }),
  })
  .meta({ id: "Alert" });
export type PublicAlert = z.infer<typeof alertSchema>;

export const alertListSchema = z
  .object({
    object: z.literal("list"),
    data: z.array(alertSchema),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
  })
  .meta({ id: "AlertList" });

const iso = (t: number) => new Date(t).toISOString();

export function toPublicRule(row: AlertRuleRow): PublicRule {
  return {
    id: row.id,
    object: "alert_rule",
    metric: row.metric as PublicRule["metric"],
    threshold: row.threshold,
    window: row.window as AlertWindow,
    min_sent: row.minSent,
    filters: JSON.parse(row.filters) as PublicRule["filters"],
    description: row.description,
    state: row.state as PublicRule["state"],
    last_value: row.lastValue,
    last_evaluated_at: row.lastEvaluatedAt === null ? null : iso(row.lastEvaluatedAt),
    created_at: iso(row.createdAt),
  };
}

/** An alert row as D1 returns it (snake_case columns). */
export interface AlertDbRow {
  account_id: string;
  occurred_at: number;
  id: string;
  rule_id: string;
  type: string;
  metric: string;
  value: number;
  threshold: number;
  window_start: number;
  window_end: number;
  window_sent: number;
  filters: string;
  pushed_at: number | null;
}

export function toPublicAlert(row: AlertDbRow): PublicAlert {
  return {
    id: row.id,
    object: "alert",
    rule_id: row.rule_id,
    type: row.type as AlertType,
    metric: row.metric as PublicAlert["metric"],
    value: row.value,
    threshold: row.threshold,
    window: { start: iso(row.window_start), end: iso(row.window_end), sent: row.window_sent },
    filters: JSON.parse(row.filters) as PublicAlert["filters"],
    occurred_at: iso(row.occurred_at),
  };
}

export type { AlertRow };
