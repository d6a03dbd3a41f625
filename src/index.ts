import { newApp } from "./app";
import type { Env } from "./env";
import { handleEventsBatch } from "./queue/consumer";
import { handleDeadLetters } from "./queue/dead-letter";
import { handleJobsBatch } from "./queue/jobs";
import { runScheduledWork } from "./scheduled";
import { serveHotPath } from "./tracking/routes/open-click";
import { handleWebhookBatch } from "./webhooks/deliver";

const app = newApp();

export default {
  // Opens and clicks are answered before the router: they are most of the traffic (tracking/routes/open-click.ts).
  fetch: (request: Request, env: Env, ctx: ExecutionContext) =>
    serveHotPath(request, env, ctx) ?? app.fetch(request, env, ctx),
  async queue(batch, env, _ctx) {
    if (batch.queue.endsWith("-dlq")) await handleDeadLetters(batch, env);
    else if (batch.queue.endsWith("-webhooks")) await handleWebhookBatch(batch, env);
    else if (batch.queue.endsWith("-jobs")) await handleJobsBatch(batch, env);
    else await handleEventsBatch(batch, env);
  },
  // Awaited rather than waitUntil'd: a failed purge or reconcile then marks the cron run failed.
  // Number(): locally, the assets proxy's forwarded trigger (scripts/local-cron-fix.mjs, as the
  // upstream fix does) hands scheduledTime over as a Date, which D1 refuses as a bound value.
  async scheduled(controller, env, _ctx) {
    await runScheduledWork(env, Number(controller.scheduledTime));
  },
} satisfies ExportedHandler<Env, unknown>;
