import * as z from "zod";
import { eventRecordSchema, registrationSchema, topicSchema } from "../db/event-record";

/** Reasons of SPEC §10. */
export const SUPPRESSION_REASONS = [
  "hard_bounce",
  "soft_bounce",
  "complaint",
  "unsubscribe",
  "manual",
] as const;
export const suppressionReasonSchema = z.enum(SUPPRESSION_REASONS);
export type SuppressionReason = z.infer<typeof suppressionReasonSchema>;

/** A suppression an event causes; the consumer writes it with the event (D1 first, then the KV mirror). */
export const suppressEffectSchema = z.object({
  reason: suppressionReasonSchema,
  /** null: every topic. */
  topic: topicSchema.nullable(),
  /**
   * With a null topic: take the registered message's topic when it has one (an SES Subscription
   * record without a topic tag). Our own unsubscribe tokens never set it: a token without a topic
   * suppresses every topic (SPEC §5).
   */
  inherit_topic: z.boolean().optional(),
});
export type SuppressEffect = z.infer<typeof suppressEffectSchema>;

export { type Registration, registrationSchema } from "../db/event-record";

/**
 * Everything the Worker writes through EVENTS_QUEUE. A discriminated union on `type`, so the
 * consumer validates each message and knows its shape; new kinds of write get a new member here.
 */
export const queueMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("event"),
    event: eventRecordSchema,
    suppress: suppressEffectSchema.optional(),
    /**
     * Clicks: the network the request came from (networkOf in src/tracking/bursts.ts), for the
     * consumer's burst detection. Stored beside the event, never part of the public event (§8).
     */
    network: z.string().max(64).nullable().optional(),
    /**
     * SES deliveries and bounces to a domain that is not a consumer domain: the provider that runs
     * the receiving server, as SES's report names it (mailbox/providers.ts). The consumer remembers
     * it for the recipient's domain (db/mailbox-domains.ts).
     */
    mailbox_provider: z.enum(["google", "microsoft", "yahoo", "apple"]).optional(),
  }),
  z.object({
    type: z.literal("register"),
    account_id: z.string().min(1).max(64),
    registered_at: z.number().int().nonnegative(),
    message: registrationSchema,
  }),
]);
export type QueueMessage = z.infer<typeof queueMessageSchema>;
export type EventMessage = Extract<QueueMessage, { type: "event" }>;
export type RegisterMessage = Extract<QueueMessage, { type: "register" }>;
