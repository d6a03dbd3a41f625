import * as z from "zod";

/**
 * What WEBHOOKS_QUEUE carries: one delivery of one stored event to one endpoint. The message names
 * the event by its primary key; the delivery consumer loads the stored (enriched) event and the
 * endpoint's current settings at every attempt, so a change to the endpoint, or an event removed
 * since (a scanner's burst of clicks), governs the attempt.
 */
export const webhookMessageSchema = z.object({
  type: z.literal("deliver"),
  account_id: z.string().min(1).max(64),
  endpoint_id: z.string().regex(/^whk_[0-9a-f]{24}$/),
  event_id: z.string().min(1).max(80),
  occurred_at: z.number().int().nonnegative(),
  /** An explicit replay: a new run of attempts, delivered even when an earlier run succeeded. */
  replay: z.boolean().optional(),
  /** A run's continuation, re-enqueued because the original message would outlive queue retention. */
  continued: z.boolean().optional(),
  /**
   * An attempt already made whose record D1 refused: the next run of this message only writes it
   * (the endpoint is not POSTed again), so a D1 outage never duplicates a delivery.
   */
  outcome: z
    .object({
      kind: z.enum(["succeeded", "gone", "failed"]),
      status: z.number().int().nullable(),
      error: z.string().max(400).nullable(),
      /** The failure was ours (the secret could not be opened), not the endpoint's: its health is untouched. */
      ours: z.boolean().optional(),
      event_type: z.string().max(40),
      at: z.number().int(),
      first_attempt_at: z.number().int(),
      attempts: z.number().int().min(1),
    })
    .optional(),
});
export type WebhookMessage = z.infer<typeof webhookMessageSchema>;
