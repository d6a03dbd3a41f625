import * as z from "zod";
import { bareAddress, domainOf, tagSchema, topicSchema } from "../events/record";
import type { QueueMessage, Registration } from "../pipeline/messages";

/** The correlation dimensions a platform registers for one message (SPEC §6). */
export const messageDimensionsSchema = z.object({
  email_id: z.string().min(1).max(256),
  message_id: z.string().min(1).max(998).optional(),
  from: z.string().min(3).max(320).optional(),
  subject: z.string().max(2000).optional(),
  topic: topicSchema.optional(),
  campaign: z.string().min(1).max(256).optional(),
  template_id: z.string().min(1).max(256).optional(),
  tags: z.array(tagSchema).max(10).optional(),
});
export type MessageDimensions = z.infer<typeof messageDimensionsSchema>;

/** Normalises registered dimensions: bare From address, its lowercased domain, deduplicated tags. */
export function toRegistration(input: MessageDimensions): Registration {
  const from = bareAddress(input.from);
  return {
    email_id: input.email_id,
    message_id: input.message_id ?? null,
    from,
    from_domain: domainOf(from),
    subject: input.subject ?? null,
    topic: input.topic ?? null,
    campaign: input.campaign ?? null,
    template_id: input.template_id ?? null,
    tags: [...new Set(input.tags ?? [])],
  };
}

export function registrationMessage(
  accountId: string,
  input: MessageDimensions,
  now = Date.now(),
): QueueMessage {
  return { type: "register", account_id: accountId, registered_at: now, message: toRegistration(input) };
}
