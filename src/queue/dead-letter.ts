import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { validMessages, writeRetried } from "./consumer";
import { type ParkedRecord, parkedKey, syncMirrorLogged } from "./parked";

/** Seconds before a dead letter whose parking failed (R2 trouble) is offered again. */
const PARK_RETRY_SECONDS = 60;

/**
 * The dead-letter queue's consumer. D1 may answer again by the time a message gets here, so the
 * batch is first written the normal way; if D1 still fails, every message is parked in R2 and
 * acknowledged. A message that cannot be parked either is retried (the DLQ has its own retries).
 * A message that fails validation could never be written: logged whole and acknowledged.
 */
export async function handleDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const valid = validMessages(batch, (message) =>
    log("error", "invalid dead-lettered queue message dropped", {
      queue: batch.queue,
      message_id: message.id,
      attempts: message.attempts,
      body: message.body,
    }),
  );
  if (valid.length === 0) return;

  try {
    const touched = await writeRetried(
      env,
      valid.map((v) => v.body),
    );
    for (const { message } of valid) message.ack();
    log("info", "dead-lettered messages written on arrival", { queue: batch.queue, count: valid.length });
    await syncMirrorLogged(env, touched);
    return;
  } catch (err) {
    log("warn", "D1 still failing; parking dead-lettered messages in R2", {
      queue: batch.queue,
      count: valid.length,
      ...describeError(err),
    });
  }

  const parkedAt = new Date().toISOString();
  await Promise.all(
    valid.map(async ({ message }) => {
      const record: ParkedRecord = {
        message_id: message.id,
        queue: batch.queue,
        attempts: message.attempts,
        enqueued_at: message.timestamp.toISOString(),
        parked_at: parkedAt,
        body: message.body,
      };
      try {
        await env.PARKED.put(parkedKey(message.timestamp, message.id), JSON.stringify(record), {
          httpMetadata: { contentType: "application/json" },
        });
        message.ack();
      } catch (err) {
        log("error", "dead-lettered message not parked; retrying", {
          queue: batch.queue,
          message_id: message.id,
          ...describeError(err),
        });
        message.retry({ delaySeconds: PARK_RETRY_SECONDS });
      }
    }),
  );
}
