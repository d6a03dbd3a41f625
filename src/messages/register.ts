import * as z from "zod";
import { DIMENSIONS, EVENT_FIELDS, type Registration, registrationInputShape } from "../db/event-record";
import { bareAddress, domainOf } from "../events/record";
import { validationError } from "../lib/errors";
import type { QueueMessage } from "../pipeline/messages";

/** The correlation dimensions a platform registers for one message (SPEC §6), from the event's declaration. */
export const messageDimensionsSchema = z.object({
  email_id: EVENT_FIELDS.email_id.schema,
  ...registrationInputShape,
});
export type MessageDimensions = z.infer<typeof messageDimensionsSchema>;

/** Normalises registered dimensions: bare From address, its lowercased domain, deduplicated tags. */
export function toRegistration(input: MessageDimensions): Registration {
  const from = bareAddress(input.from);
  const given = input as Partial<Record<string, unknown>>;
  const registration = Object.fromEntries(DIMENSIONS.map((k) => [k, given[k] ?? null]));
  return {
    ...(registration as Registration),
    email_id: input.email_id,
    from,
    from_domain: domainOf(from),
    tags: [...new Set(input.tags ?? [])],
  };
}

/** One registration per email_id in a call: a repeat would leave which one wins to chance. */
export function checkDistinctEmailIds(messages: readonly { email_id: string }[]): void {
  const seen = new Set<string>();
  for (const [i, m] of messages.entries()) {
    if (seen.has(m.email_id))
      throw validationError("messages", `messages.${i}.email_id ${m.email_id} is repeated`);
    seen.add(m.email_id);
  }
}

export function registrationMessage(
  accountId: string,
  input: MessageDimensions,
  now = Date.now(),
): QueueMessage {
  return { type: "register", account_id: accountId, registered_at: now, message: toRegistration(input) };
}
