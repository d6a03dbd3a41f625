import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import type { QueueMessage } from "./messages";

/** Queues' limits for one sendBatch: 100 messages and 256 KB in all, counted in UTF-8 bytes. */
const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 250_000;
const encoder = new TextEncoder();

/**
 * Sends messages to EVENTS_QUEUE in as few sendBatch calls as the limits allow. Any failure is
 * `503 unavailable`, so the caller (SNS, a platform) retries; every write downstream is idempotent,
 * so a retry after a partial send duplicates nothing.
 */
export async function enqueue(env: Env, messages: QueueMessage[]): Promise<void> {
  if (messages.length === 0) return;
  try {
    if (messages.length === 1) {
      await env.EVENTS_QUEUE.send(messages[0]!, { contentType: "json" });
      return;
    }
    let batch: MessageSendRequest<QueueMessage>[] = [];
    let bytes = 0;
    for (const body of messages) {
      // Bytes, not UTF-16 code units: a subject in another script is up to 3 bytes a character.
      const size = encoder.encode(JSON.stringify(body)).byteLength + 64;
      if (batch.length === MAX_BATCH_MESSAGES || (batch.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
        await env.EVENTS_QUEUE.sendBatch(batch);
        batch = [];
        bytes = 0;
      }
      batch.push({ body, contentType: "json" });
      bytes += size;
    }
    if (batch.length > 0) await env.EVENTS_QUEUE.sendBatch(batch);
  } catch (err) {
    throw new ApiError("unavailable", "the event queue did not accept the write; retry", { cause: err });
  }
}
