import { describeError, log } from "./log";

/**
 * The Workers Rate Limiting bindings (wrangler.toml `[[ratelimits]]`): API_LIMITER per account on
 * /v1, TRACKING_LIMITER per client address on the tracking routes. Cloudflare counts per location
 * and approximately; the binding says only yes or no, so Retry-After is the configured period.
 *
 * An absent binding (a bare benchmark instance) or one that fails lets the request through: a
 * limiter outage must not take the API or the tracking links down with it.
 */
export async function withinLimit(limiter: RateLimit | undefined, key: string): Promise<boolean> {
  if (!limiter) return true;
  try {
    return (await limiter.limit({ key })).success;
  } catch (err) {
    log("warn", "rate limiter failed; request let through", describeError(err));
    return true;
  }
}

/** Seconds a client is told to wait: the period of the binding in wrangler.toml. */
export const API_RETRY_AFTER_SECONDS = 60;
export const TRACKING_RETRY_AFTER_SECONDS = 10;

/**
 * The address a tracking request is counted under: Cloudflare's `CF-Connecting-IP`, an IPv6
 * address by its /48. A subscriber is usually given a /56 or a /48 and rotates through its /64s
 * freely (65,536 of them in a /48), so keying by /64 would give one client 65,536 buckets; a /48
 * is one site.
 */
export function clientAddressKey(request: Request): string {
  const ip = request.headers.get("cf-connecting-ip")?.trim() ?? "";
  if (!ip.includes(":")) return ip === "" ? "unknown" : ip;
  const [head = "", tail] = ip.toLowerCase().split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 3)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/48`;
}
