import { getAccountPlan } from "../accounts/plans";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { totalKey, totalOnce } from "../lib/totals";
import { countEvents, scanEvents } from "../store";
import {
  clampWindow,
  decodeCursor,
  type EventQuery,
  encodeCursor,
  filterFingerprint,
  parseEventQuery,
  requestedWindow,
} from "./query";
import { type PublicEvent, toPublicEvent } from "./serialize";

export interface EventPage {
  object: "list";
  data: PublicEvent[];
  has_more: boolean;
  next_cursor: string | null;
  window: { start: string; end: string; clamped: boolean };
  total?: number;
  /** D1's rows_read for the page's scan, exposed to tests and the benchmark only. */
  rowsRead: number;
  /** D1's rows_read for the count, when asked. */
  countRowsRead?: number;
}

/**
 * Runs GET /v1/events for an account: `params` as the client gave them (the cursor is bound to
 * them), `query` their parsed form when the route has parsed them already.
 */
export async function listEvents(
  env: Env,
  accountId: string,
  params: URLSearchParams,
  now = Date.now(),
  query: EventQuery = parseEventQuery(params),
): Promise<EventPage> {
  const fingerprint = await filterFingerprint(accountId, params);
  const cursor = query.after === null ? null : decodeCursor(query.after, fingerprint);
  const requested = cursor?.window ?? requestedWindow(query, now);

  const [plan, domainKnown] = await Promise.all([
    getAccountPlan(env, accountId),
    query.filters.domain === null
      ? Promise.resolve(true)
      : env.DB.prepare("SELECT 1 FROM sending_domains WHERE account_id = ? AND domain = ?")
          .bind(accountId, query.filters.domain)
          .first()
          .then((row) => row !== null),
  ]);
  if (!domainKnown)
    throw validationError("domain", `domain ${query.filters.domain} is not one this account has sent from`);

  const window = clampWindow(requested, plan.retention_days, now);
  // The page reads at most PAGE_ROW_BUDGET rows and may come back short, with a cursor where it stopped.
  // count=true is exact: one COUNT over the same access path, run beside the first page's scan.
  // The account's events database: one today; a shard router will choose it (SPEC §17).
  const db = env.DB;
  // SPEC §18: the total is counted once per paging chain (a later page reads it from its cursor),
  // and a first page at most once a minute per account and query (lib/totals.ts).
  const carried = cursor?.total;
  let countRowsRead: number | undefined;
  const counting = !query.count
    ? null
    : carried !== undefined
      ? Promise.resolve(carried)
      : totalOnce(totalKey(accountId, "events", [["f", fingerprint]]), async () => {
          const counted = await countEvents(db, accountId, query.filters, window);
          countRowsRead = counted.rowsRead;
          return counted.total;
        });
  const [scan, total] = await Promise.all([
    scanEvents(db, accountId, query.filters, window, cursor?.position ?? null, { limit: query.limit }),
    counting,
  ]);
  const more = scan.hasMore && scan.next !== null;

  return {
    object: "list",
    data: scan.rows.map(toPublicEvent),
    has_more: more,
    next_cursor:
      more && scan.next ? encodeCursor(fingerprint, requested, scan.next, total ?? undefined) : null,
    window: {
      start: new Date(window.start).toISOString(),
      end: new Date(window.end).toISOString(),
      clamped: window.clamped,
    },
    ...(total !== null ? { total } : {}),
    rowsRead: scan.rowsRead,
    ...(total !== null ? { countRowsRead: countRowsRead ?? 0 } : {}),
  };
}
