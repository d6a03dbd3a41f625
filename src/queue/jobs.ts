import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { processImportChunk } from "../suppressions/imports";
import { jobMessageSchema } from "../suppressions/jobs";
import { retryDelaySeconds } from "./consumer";

/**
 * The JOBS_QUEUE consumer: long background work cut into steps that each fit one invocation. Today
 * one kind, a suppression import's next chunk (suppressions/imports.ts); a step that has more to do
 * sends the next step's message before it is acknowledged, so a crash in between re-runs the step
 * (idempotent) rather than losing the rest. Batches hold one message (wrangler.toml), so each step
 * has a whole invocation's subrequest budget.
 */
export async function handleJobsBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = jobMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      log("error", "invalid job message dropped", { queue: batch.queue, message_id: message.id });
      message.ack();
      continue;
    }
    try {
      const outcome = await processImportChunk(env, parsed.data.id);
      if (outcome === "more") await env.JOBS_QUEUE.send(parsed.data, { contentType: "json" });
      message.ack();
    } catch (err) {
      log("warn", "job step failed; retrying", { import_id: parsed.data.id, ...describeError(err) });
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}
