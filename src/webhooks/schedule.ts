/**
 * The retry schedule of SPEC §14: about 5 s, 5 min, 30 min, 2 h, 5 h and 10 h after the previous
 * attempt, then every 12 h, until 72 hours after the run's first attempt. The last retry is pulled
 * in to exactly 72 h when the next step would pass it, so a run always ends with an attempt at its
 * deadline. Queues caps one delay at 12 hours (43,200 s), which the schedule never exceeds.
 */

export const RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000] as const;
export const LATER_DELAY_SECONDS = 43_200;
export const DELIVERY_WINDOW_MS = 72 * 3600_000;

/** When to try again after the `attempts`-th attempt failed at `now`, or null when the run is over. */
export function nextAttempt(
  firstAttemptAt: number,
  attempts: number,
  now: number,
): { at: number; delaySeconds: number } | null {
  const deadline = firstAttemptAt + DELIVERY_WINDOW_MS;
  if (now >= deadline) return null;
  const step = RETRY_DELAYS_SECONDS[attempts - 1] ?? LATER_DELAY_SECONDS;
  const at = Math.min(now + step * 1000, deadline);
  return { at, delaySeconds: Math.max(1, Math.ceil((at - now) / 1000)) };
}
