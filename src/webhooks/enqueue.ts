import type { Env } from "../env";
import type { WebhookMessage } from "./messages";

/** Queues' sendBatch limits: 100 messages (our messages are ~250 bytes, far under 256 KB). */
const MAX_BATCH_MESSAGES = 100;

/** Clicks wait a few seconds, so a scanner's burst is removed (by the events consumer) before delivery. */
export const CLICK_DELAY_SECONDS = 5;

export interface Delivery {
  body: WebhookMessage;
  delaySeconds?: number;
}

/** Sends deliveries to WEBHOOKS_QUEUE in batches of 100; throws when the queue refuses. */
export async function sendDeliveries(env: Env, deliveries: Delivery[]): Promise<void> {
  for (let i = 0; i < deliveries.length; i += MAX_BATCH_MESSAGES) {
    await env.WEBHOOKS_QUEUE.sendBatch(
      deliveries.slice(i, i + MAX_BATCH_MESSAGES).map((d) => ({
        body: d.body,
        contentType: "json" as const,
        ...(d.delaySeconds ? { delaySeconds: d.delaySeconds } : {}),
      })),
    );
  }
}
