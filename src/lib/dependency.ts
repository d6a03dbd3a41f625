/**
 * Failures of a storage dependency (D1, KV, R2) as the Workers runtime reports them. An API request
 * that meets one answers `503 unavailable` (SPEC §4: retry), not `500`: the request was fine, the
 * database was not. Drizzle wraps D1's error in its own, so the cause chain is walked.
 *
 * D1_TYPE_ERROR is left out: it is a value the code bound wrongly, a bug, not an outage.
 */
const DEPENDENCY_MESSAGE = /^(?:D1_(?!TYPE_ERROR)[A-Z_]*ERROR\b|D1 |KV (?:GET|PUT|DELETE|LIST)\b|R2 )/;

export function isDependencyFailure(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (DEPENDENCY_MESSAGE.test(current.message)) return true;
    current = current.cause;
  }
  return false;
}
