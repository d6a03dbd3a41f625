import * as z from "zod";
import { ALERT_TYPES } from "../alerts/schema";
import type { WebhookEndpointRow } from "../db/webhooks";
import { EVENT_TYPES, eventTypeSchema, tagSchema, topicSchema } from "../events/record";

/** Public shapes and request bodies of the webhook routes (SPEC §14). */

/**
 * What an endpoint may subscribe to: the §8 event types, and the changes pushed beside them
 * (§14: suppression changes, whose data is the §10 entry, and the alert transitions of §19).
 */
export const WEBHOOK_EVENT_TYPES = [
  ...EVENT_TYPES,
  "suppression.created",
  "suppression.deleted",
  ...ALERT_TYPES,
] as const;
export const webhookEventTypeSchema = z.enum(WEBHOOK_EVENT_TYPES);

export const filtersSchema = z
  .object({
    topic: topicSchema.optional(),
    campaign: z.string().min(1).max(256).optional(),
    domain: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[A-Za-z0-9.-]+$/, "domain must be a hostname")
      .transform((d) => d.toLowerCase())
      .optional(),
    tags: z.array(tagSchema).min(1).max(10).optional().meta({ description: "any of these tags" }),
  })
  .strict()
  .meta({
    id: "WebhookFilters",
    description: "Exact matches as in GET /v1/events (`tags`: any of); every given filter must match",
  });
export type WebhookFilters = z.output<typeof filtersSchema>;

const eventTypesSchema = z
  .array(webhookEventTypeSchema)
  .min(1)
  .max(WEBHOOK_EVENT_TYPES.length)
  .transform((types) => [...new Set(types)])
  .nullable()
  .meta({ description: "the event types delivered; null: every type" });

export const endpointSchema = z
  .object({
    id: z.string().meta({ description: "whk_…" }),
    object: z.literal("webhook_endpoint"),
    url: z.string(),
    description: z.string().nullable(),
    event_types: z.array(webhookEventTypeSchema).nullable(),
    filters: z.object({
      topic: z.string().optional(),
      campaign: z.string().optional(),
      domain: z.string().optional(),
      tags: z.array(z.string()).optional(),
    }),
    status: z.enum(["enabled", "disabled"]),
    disabled_reason: z.enum(["manual", "gone", "failing"]).nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "WebhookEndpoint" });
export type PublicEndpoint = z.infer<typeof endpointSchema>;

export const endpointWithSecretSchema = endpointSchema
  .extend({ secret: z.string().meta({ description: "whsec_…; shown only on creation and rotation" }) })
  .meta({ id: "WebhookEndpointWithSecret" });

export const endpointListSchema = z
  .object({ object: z.literal("list"), data: z.array(endpointSchema) })
  .meta({ id: "WebhookEndpointList" });

const isAbsoluteUrl = (value: string) => {
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
};
/** The syntax is the schema's (`format: uri`); where it may point is checked by webhooks/url-safety.ts. */
const urlField = z
  .string()
  .min(1)
  .max(2048)
  .refine(isAbsoluteUrl, "must be an absolute URL")
  .meta({ format: "uri", description: "https to a public host, no credentials" });
const descriptionField = z.string().max(500).nullable();

export const createBodySchema = z
  .object({
    url: urlField,
    description: descriptionField.optional(),
    event_types: eventTypesSchema.optional(),
    filters: filtersSchema.optional(),
  })
  .strict()
  .meta({ id: "CreateWebhookEndpoint" });

export const patchBodySchema = z
  .object({
    url: urlField.optional(),
    description: descriptionField.optional(),
    event_types: eventTypesSchema.optional(),
    filters: filtersSchema
      .optional()
      .meta({ description: "replaces the filters as a whole; {} removes them" }),
    status: z.enum(["enabled", "disabled"]).optional(),
  })
  .strict()
  .meta({ id: "UpdateWebhookEndpoint" });
export type PatchBody = z.output<typeof patchBodySchema>;

export const deletedEndpointSchema = z
  .object({ deleted: z.literal(true), id: z.string() })
  .meta({ id: "WebhookEndpointDeleted" });

export const DELIVERY_STATUSES = ["pending", "succeeded", "failed"] as const;

export const deliverySchema = z
  .object({
    id: z.string().meta({ description: "wdl_…, derived from the endpoint and the event" }),
    event_id: z.string(),
    event_type: webhookEventTypeSchema,
    status: z.enum(DELIVERY_STATUSES),
    attempts: z.number().int(),
    last_attempt_at: z.string(),
    next_attempt_at: z.string().nullable(),
    response_status: z.number().int().nullable(),
    error: z.string().nullable(),
  })
  .meta({ id: "WebhookDelivery" });

export const deliveryListSchema = z
  .object({
    object: z.literal("list"),
    data: z.array(deliverySchema),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
  })
  .meta({ id: "WebhookDeliveryList" });

export const MAX_REPLAY_IDS = 100;
export const MAX_REPLAY_WINDOW_EVENTS = 10_000;

export const replayBodySchema = z
  .object({
    event_ids: z.array(z.string().min(1).max(80)).min(1).max(MAX_REPLAY_IDS).optional(),
    start: z.iso.datetime({ offset: true, message: "start must be an ISO 8601 timestamp" }).optional(),
    end: z.iso.datetime({ offset: true, message: "end must be an ISO 8601 timestamp" }).optional(),
    event_type: z
      .union([eventTypeSchema, z.array(eventTypeSchema).min(1)])
      .optional()
      .meta({ description: "one type or a list; only with start" }),
  })
  .strict()
  .meta({
    id: "ReplayWebhookEvents",
    description:
      "Either event_ids (up to 100) or a window start/end (end defaults to now) of at most 10,000 events",
  });

export const replayResultSchema = z.object({ queued: z.number().int() }).meta({ id: "WebhookReplayQueued" });

export function toPublicEndpoint(row: WebhookEndpointRow): PublicEndpoint {
  return {
    id: row.id,
    object: "webhook_endpoint",
    url: row.url,
    description: row.description,
    event_types:
      row.eventTypes === null ? null : (JSON.parse(row.eventTypes) as PublicEndpoint["event_types"]),
    filters: JSON.parse(row.filters) as PublicEndpoint["filters"],
    status: row.status as PublicEndpoint["status"],
    disabled_reason: row.disabledReason as PublicEndpoint["disabled_reason"],
    created_at: new Date(row.createdAt).toISOString(),
    updated_at: new Date(row.updatedAt).toISOString(),
  };
}
