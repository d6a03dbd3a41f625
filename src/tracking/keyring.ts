import { config } from "../config";
import type { Env } from "../env";
import { importTrackingKeys, type TrackingKeyring } from "./token";

/**
 * The imported TRACKING_KEYS, once per isolate. The promise is cached by the variable's value, so
 * concurrent first requests share one import and a rotated value (a new deployment, or a test's own
 * env) gets its own keyring. A failed import is forgotten, so the next request tries again.
 */
const keyrings = new Map<string, Promise<TrackingKeyring>>();

export function trackingKeyring(env: Env): Promise<TrackingKeyring> {
  // Parses (and validates) first: a missing or malformed value is `500 configuration_error`.
  const keys = config(env, "TRACKING_KEYS");
  const cacheKey = env.TRACKING_KEYS ?? "";
  let keyring = keyrings.get(cacheKey);
  if (!keyring) {
    keyring = importTrackingKeys(keys);
    keyrings.set(cacheKey, keyring);
    keyring.catch(() => keyrings.delete(cacheKey));
  }
  return keyring;
}
