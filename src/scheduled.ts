import { evaluateAlerts } from "./alerts/evaluate";
import { purgeExpiredAlerts } from "./alerts/purge";
import type { Env } from "./env";
import { runPendingErasures } from "./erasures/run";
import { describeError, log } from "./lib/log";
import { purgeExpiredRollups } from "./metrics/purge-rollups";
import { parkedStatus, replayParkedMessages } from "./queue/parked";
import { purgeExpiredEvents } from "./retention/purge";
import { purgeStaleRegistrations } from "./retention/purge-registrations";
import { reconcileMirror } from "./retention/reconcile";
import { purgeOldChanges, pushPendingChanges } from "./suppressions/changes";
import { resumeStalledImports } from "./suppressions/imports";
import { deleteExpired } from "./suppressions/store";
import { purgeBurstMarks } from "./tracking/burst-store";
import { purgeExpiredDeliveries } from "./webhooks/purge";
import { sealPlaintextSecrets } from "./webhooks/store";

/**
 * The cron's work: the retention purge, then the mirror reconcile. Each is bounded on its own
 * budget and runs even when the other failed; a failure is logged and then rethrown so the cron
 * invocation is marked failed in the dashboard.
 */
export async function runScheduledWork(env: Env, now: number): Promise<void> {
  const tasks = [
    // First, so that what waited longest is written before anything else; its log line shows the backlog.
    ["parked replay", async () => ({ ...(await replayParkedMessages(env)), ...(await parkedStatus(env)) })],
    // Early: an alert is due within 5 minutes of its data (SPEC §19); bounded by its own time budget.
    ["alert evaluation", () => evaluateAlerts(env, now)],
    ["retention purge", () => purgeExpiredEvents(env, now)],
    // After the events: a registration goes once its email has no event left.
    ["registration purge", () => purgeStaleRegistrations(env, now)],
    ["webhook deliveries purge", () => purgeExpiredDeliveries(env, now)],
    ["metrics rollup purge (400 days)", () => purgeExpiredRollups(env, now)],
    ["alert history purge (400 days)", () => purgeExpiredAlerts(env, now)],
    // Before the reconcile: an expired entry leaves D1 and KV together, with its suppression.deleted.
    ["suppression expiry", () => deleteExpired(env, env.DB, now)],
    // Erasures a dying Worker left unfinished (SPEC §20: done within one scheduled cycle).
    ["erasures", () => runPendingErasures(env)],
    // Imports whose chunk messages were all lost (a failed send, retries exhausted): sent again.
    ["stalled imports", () => resumeStalledImports(env, now)],
    ["mirror reconcile", () => reconcileMirror(env)],
    // What a writer committed but could not push (a failed queue send, a Worker that died).
    ["suppression changes push", async () => ({ pushed: await pushPendingChanges(env, env.DB) })],
    ["suppression changes purge", () => purgeOldChanges(env.DB, now)],
    ["burst marks purge", () => purgeBurstMarks(env.DB, now)],
    // Rows written before secrets were encrypted (SPEC §14): sealed a bounded number per run.
    ["webhook secrets sealing", () => sealPlaintextSecrets(env)],
  ] as const;
  const failed: string[] = [];
  for (const [name, task] of tasks) {
    const started = Date.now();
    try {
      const result = await task();
      log("info", `${name} finished`, { ...result, duration_ms: Date.now() - started });
    } catch (err) {
      failed.push(name);
      log("error", `${name} failed`, { duration_ms: Date.now() - started, ...describeError(err) });
    }
  }
  if (failed.length > 0) throw new Error(`scheduled work failed: ${failed.join(", ")}`);
}
