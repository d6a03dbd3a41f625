import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { DAY_MS } from "../lib/params";
import { NO_COMPLAINT_FEEDBACK } from "../mailbox/providers";
import { rateOf, windowCounters } from "./rates";

/** SES's review and pause thresholds (SPEC §19). */
export const THRESHOLDS = {
  bounce_warning: 0.05,
  bounce_at_risk: 0.1,
  complaint_warning: 0.001,
  complaint_at_risk: 0.005,
} as const;
/** Fewer sent than this in the window: `insufficient_volume`. */
export const MIN_VOLUME = 100;

export type ReputationStatus = "healthy" | "warning" | "at_risk" | "insufficient_volume";

export function statusOf(sent: number, bounce: number | null, complaint: number | null): ReputationStatus {
  if (sent < MIN_VOLUME) return "insufficient_volume";
  const b = bounce ?? 0;
  const c = complaint ?? 0;
  if (b >= THRESHOLDS.bounce_at_risk || c >= THRESHOLDS.complaint_at_risk) return "at_risk";
  if (b >= THRESHOLDS.bounce_warning || c >= THRESHOLDS.complaint_warning) return "warning";
  return "healthy";
}

export async function getReputation(
  env: Env,
  accountId: string,
  q: { days: number; domain?: string | undefined },
  now = Date.now(),
) {
  const result = await windowCounters(env, accountId, q.days * DAY_MS, { domain: q.domain }, now);
  if (result.truncated) {
    throw validationError(
      "days",
      "this window holds more rollup rows than one request reads (SPEC §18); ask for fewer days",
    );
  }
  const t = result.totals;
  const bounce = rateOf("bounce_rate", t);
  const complaint = rateOf("complaint_rate", t);
  return {
    object: "reputation" as const,
    window: {
      start: new Date(result.window.start).toISOString(),
      end: new Date(result.window.end).toISOString(),
      sent: t.sent,
    },
    bounce_rate: bounce,
    complaint_rate: complaint,
    status: statusOf(t.sent, bounce, complaint),
    by_mailbox_provider: result.byProvider.map((p) => ({
      mailbox_provider: p.mailbox_provider,
      sent: p.sent,
      bounce_rate: rateOf("bounce_rate", p),
      complaint_rate: NO_COMPLAINT_FEEDBACK.has(p.mailbox_provider) ? null : rateOf("complaint_rate", p),
    })),
    thresholds: THRESHOLDS,
  };
}
