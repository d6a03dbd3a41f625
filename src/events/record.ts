import * as z from "zod";

/** Event types of SPEC §8. */
export const EVENT_TYPES = [
  "email.sent",
  "email.delivered",
  "email.delayed",
  "email.bounced",
  "email.complained",
  "email.suppressed",
  "email.unsubscribed",
  "email.opened",
  "email.clicked",
  "email.failed",
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof eventTypeSchema>;

/** Tag and topic syntax of SPEC §6. */
export const TAG_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const TOPIC_PATTERN = /^[a-z0-9_.-]{1,64}$/;
export const tagSchema = z.string().regex(TAG_PATTERN, "a tag is 1-64 characters of [A-Za-z0-9_-]");
export const topicSchema = z.string().regex(TOPIC_PATTERN, "a topic is 1-64 characters of [a-z0-9_.-]");

export const botSchema = z.object({ kind: z.literal("proxy"), source: z.string() });
export type Bot = z.infer<typeof botSchema>;

export const geoSchema = z.object({
  country: z.string().nullable(),
  region: z.string().nullable(),
  city: z.string().nullable(),
});
export type Geo = z.infer<typeof geoSchema>;

/** `tracking` of SPEC §5, on opens and clicks only. */
export const trackingSchema = z.object({
  user_agent: z.string().nullable(),
  ip_address: z.string().nullable(),
  url: z.string().nullable(),
  link_name: z.string().nullable(),
  geo: geoSchema.nullable(),
  bot: botSchema.nullable(),
});
export type Tracking = z.infer<typeof trackingSchema>;

/**
 * One event as the queue carries it and the consumer writes it. It is the public event object of
 * SPEC §8 less `object`, plus the owning account and `occurred_at` as epoch milliseconds. Correlation
 * dimensions that the producer does not know are null here; the consumer fills them from the
 * message's registration when there is one.
 */
export const eventRecordSchema = z.object({
  id: z.string().regex(/^evt_[0-9a-z]{8,64}$/),
  account_id: z.string().min(1).max(64),
  type: eventTypeSchema,
  occurred_at: z.number().int().nonnegative(),
  email_id: z.string().min(1).max(256),
  message_id: z.string().max(998).nullable(),
  from: z.string().max(320).nullable(),
  from_domain: z.string().max(255).nullable(),
  recipient: z.string().min(1).max(320),
  subject: z.string().max(2000).nullable(),
  topic: z.string().nullable(),
  campaign: z.string().max(256).nullable(),
  template_id: z.string().max(256).nullable(),
  tags: z.array(z.string()).max(10),
  smtp_code: z.number().int().nullable(),
  smtp_response: z.string().max(4000).nullable(),
  bounce_type: z.enum(["permanent", "transient", "undetermined"]).nullable(),
  bounce_classification: z.string().max(128).nullable(),
  complaint_type: z.string().max(128).nullable(),
  attempt: z.number().int().nullable(),
  tracking: trackingSchema.nullable(),
});
export type EventRecord = z.infer<typeof eventRecordSchema>;

/** A record with every optional dimension null: producers spread their known fields over it. */
export function blankEvent(
  base: Pick<EventRecord, "id" | "account_id" | "type" | "occurred_at" | "email_id" | "recipient">,
): EventRecord {
  return {
    ...base,
    message_id: null,
    from: null,
    from_domain: null,
    subject: null,
    topic: null,
    campaign: null,
    template_id: null,
    tags: [],
    smtp_code: null,
    smtp_response: null,
    bounce_type: null,
    bounce_classification: null,
    complaint_type: null,
    attempt: null,
    tracking: null,
  };
}

/** The bare address of a From header value (`"News" <news@x.com>` → `news@x.com`), or null. */
export function bareAddress(from: string | null | undefined): string | null {
  if (!from) return null;
  const angle = /<([^<>\s]+@[^<>\s]+)>/.exec(from);
  const candidate = (angle?.[1] ?? from).trim();
  return /^[^\s@<>]+@[^\s@<>]+$/.test(candidate) ? candidate : null;
}

/** The lowercased domain of an address, or null. */
export function domainOf(address: string | null | undefined): string | null {
  if (!address) return null;
  const at = address.lastIndexOf("@");
  return at > 0 && at < address.length - 1 ? address.slice(at + 1).toLowerCase() : null;
}
