import { newApp } from "./app";
import type { Env } from "./env";
import { handleEventsBatch } from "./queue/consumer";
import { handleDeadLetters } from "./queue/dead-letter";

const app = newApp();

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    if (batch.queue.endsWith("-dlq")) handleDeadLetters(batch);
    else await handleEventsBatch(batch, env);
  },
} satisfies ExportedHandler<Env, unknown>;
