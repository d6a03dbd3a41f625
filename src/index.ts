import { newApp } from "./app";
import type { Env } from "./env";
import { handleDeadLetters } from "./queue/dead-letter";
import { handleEventsBatch } from "./queue/consumer";

const app = newApp();

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    if (batch.queue.endsWith("-dlq")) handleDeadLetters(batch);
    else await handleEventsBatch(batch, env);
  },
} satisfies ExportedHandler<Env, unknown>;
