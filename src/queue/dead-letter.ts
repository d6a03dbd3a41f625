import { log } from "../lib/log";

/**
 * Messages that failed every retry. They are logged whole (they carry no secrets) so an operator can
 * replay them, then acknowledged: a dead-letter queue that retries would loop forever.
 */
export function handleDeadLetters(batch: MessageBatch<unknown>): void {
  for (const message of batch.messages) {
    log("error", "dead-lettered queue message", {
      queue: batch.queue,
      message_id: message.id,
      attempts: message.attempts,
      body: message.body,
    });
    message.ack();
  }
}
