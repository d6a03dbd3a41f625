import { newApp } from "./app";
import type { Env } from "./env";
import { handleEventsBatch } from "./queue/consumer";
import { handleDeadLetters } from "./queue/dead-letter";
import { runScheduledWork } from "./retention/scheduled";

const app = newApp();

export default {
  fetch: app.fetch,
  async queue(batch, env, _ctx) {
    if (batch.queue.endsWith("-dlq")) handleDeadLetters(batch);
    else await handleEventsBatch(batch, env);
  },
  // Awaited rather than waitUntil'd: a failed purge or reconcile then marks the cron run failed.
  async scheduled(controller, env, _ctx) {
    await runScheduledWork(env, controller.scheduledTime);
  },
} satisfies ExportedHandler<Env, unknown>;
