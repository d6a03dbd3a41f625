import { getAccountPlan } from "../accounts/plans";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { totalKey, totalOnce } from "../lib/totals";
import { scanAcross, shardsToRead } from "../shards/across";
import { type AccountShards, accountShards, readDbs } from "../shards/route";
import { countEvents, PAGE_ROW_BUDGET, pageBudgetAfterCount, scanEvents } from "../store";
import { eventTotalByRollups, windowTotal } from "./hour-reads";
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

  const account = await accountShards(env, accountId);
  const [plan, domainKnown] = await Promise.all([
    getAccountPlan(env, accountId),
    query.filters.domain === null
      ? Promise.resolve(true)
      : sendingDomainKnown(env, account, query.filters.domain),
  ]);
  if (!domainKnown)
    throw validationError("domain", `domain ${query.filters.domain} is not one this account has sent from`);

  const window = clampWindow(requested, plan.retention_days, now);
  // The page reads at most PAGE_ROW_BUDGET rows and may come back short, with a cursor where it stopped.
  // count=true is exact, counted before the first page's scan: by the rollups when only event types
  // and rollup dimensions filter, else one COUNT over the same access path.
  // Every shard holding the account's events (stripes, a previous placement) answers the page with
  // its own budget; the pages merge by (occurred_at, id), and the counts add up (SPEC §17).
  const shards = shardsToRead(account, query.filters.emailId);
  // SPEC §18: the total is counted once per paging chain (a later page reads it from its cursor),
  // and a first page at most once a minute per account and query (lib/totals.ts).
  const carried = cursor?.total;
  let countRowsRead: number | undefined;
  const counting = !query.count
    ? null
    : carried !== undefined
      ? Promise.resolve(carried)
      : totalOnce(totalKey(accountId, "events", [["f", fingerprint]]), async () => {
          // By the rollups when only event types and rollup dimensions filter (rows: hours or
          // rollup keys, plus the edges' events), else the events' count (events/hour-reads.ts).
          const counted = await windowTotal(
            env,
            shards,
            accountId,
            window,
            eventTotalByRollups(query.filters),
            (db, range) => countEvents(db, accountId, query.filters, range),
          );
          countRowsRead = counted.rowsRead;
          return counted.total;
        });
  // The count's rows come out of the page's budget (SPEC §18: the request's rows per shard), as on
  // SparkPost's first page (store/scan.ts pageBudgetAfterCount); so the count runs first.
  const total = await counting;
  const rowBudget = pageBudgetAfterCount(PAGE_ROW_BUDGET, countRowsRead ?? 0);
  const scan = await scanAcross(env, shards, query.limit, (db) =>
    scanEvents(db, accountId, query.filters, window, cursor?.position ?? null, {
      limit: query.limit,
      rowBudget,
    }),
  );
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

/** Whether the account has sent from `domain`: a key lookup on each shard it is read from. */
export async function sendingDomainKnown(env: Env, account: AccountShards, domain: string): Promise<boolean> {
  const found = await Promise.all(
    readDbs(env, account).map(({ db }) =>
      db
        .prepare("SELECT 1 FROM sending_domains WHERE account_id = ? AND domain = ?")
        .bind(account.accountId, domain)
        .first(),
    ),
  );
  return found.some((row) => row !== null);
}
