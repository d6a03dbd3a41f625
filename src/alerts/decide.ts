import type { RateMetric } from "../reputation/rates";

/**
 * When a rule changes state (SPEC §19), as a pure function. A rule fires when its metric crosses the
 * threshold (above it for bounce and complaint rates, below it for delivery, open and click rates)
 * with at least `min_sent` sent in the window, and resolves when it is back inside by 20 % of the
 * threshold (hysteresis), so a rate hovering at the threshold does not flap. Without `min_sent`
 * sent, or without a value (no denominator), the state stays as it is.
 */

export const HYSTERESIS = 0.2;

export const direction = (metric: RateMetric): "above" | "below" =>
  metric === "bounce_rate" || metric === "complaint_rate" ? "above" : "below";

export interface RuleInput {
  metric: RateMetric;
  threshold: number;
  minSent: number;
  state: "ok" | "firing";
}

export function nextState(rule: RuleInput, value: number | null, sent: number): "ok" | "firing" {
  if (value === null || sent < rule.minSent) return rule.state;
  const above = direction(rule.metric) === "above";
  if (rule.state === "ok") {
    const crossed = above ? value > rule.threshold : value < rule.threshold;
    return crossed ? "firing" : "ok";
  }
  const inside = above
    ? value <= rule.threshold * (1 - HYSTERESIS)
    : value >= rule.threshold * (1 + HYSTERESIS);
  return inside ? "ok" : "firing";
}
