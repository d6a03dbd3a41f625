/**
 * Failures of a storage dependency (D1, KV, R2) as the Workers runtime reports them. An API request
 * that meets one answers `503 unavailable` (SPEC §4: retry), not `500`: the request was fine, the
 * database was not. Drizzle wraps D1's error in its own, so the cause chain is walked.
 *
 * D1_TYPE_ERROR is left out: it is a value the code bound wrongly, a bug, not an outage.
 */
const DEPENDENCY_MESSAGE = /^(?:D1_(?!TYPE_ERROR)[A-Z_]*ERROR\b|D1 |KV (?:GET|PUT|DELETE|LIST)\b|R2 )/;

/**
 * D1 refusing a statement as too large or too complex (SQLite's expression-depth, blob-size,
 * bound-variable and compound-select limits, and D1's own statement-size limit): the same request
 * fails the same way on every retry, so it is the client's `400`, never `503` (SPEC §4, §18).
 */
const TOO_LARGE_MESSAGE =
  /Expression tree is too large|SQLITE_TOOBIG|string or blob too big|too many SQL variables|too many terms in compound SELECT|statement too long|SQLITE_LIMIT|LIKE or GLOB pattern too complex/i;

function causes(err: unknown): Error[] {
  const out: Error[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    out.push(current);
    current = current.cause;
  }
  return out;
}

export function isDependencyFailure(err: unknown): boolean {
  return !isTooLargeForD1(err) && causes(err).some((e) => DEPENDENCY_MESSAGE.test(e.message));
}

export function isTooLargeForD1(err: unknown): boolean {
  return causes(err).some((e) => TOO_LARGE_MESSAGE.test(e.message));
}
