import { getAccountPlan } from "../accounts/plans";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { pageOf } from "../lib/paging";
import {
  buildEventStatements,
  clampWindow,
  decodeCursor,
  type EventQuery,
  encodeCursor,
  filterFingerprint,
  parseEventQuery,
  requestedWindow,
} from "./query";
import { type EventDbRow, type PublicEvent, toPublicEvent } from "./serialize";

export interface EventPage {
  object: "list";
  data: PublicEvent[];
  has_more: boolean;
  next_cursor: string | null;
  window: { start: string; end: string; clamped: boolean };
  total?: number;
  /** D1's rows_read for the page statement (and the count), exposed to tests and the benchmark only. */
  rowsRead: number;
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
  const { page, count } = buildEventStatements(
    accountId,
    query.filters,
    window,
    cursor?.position ?? null,
    query.limit,
  );
  const pageResult = await env.DB.prepare(page.sql)
    .bind(...page.params)
    .all<EventDbRow>();
  const countResult = query.count
    ? await env.DB.prepare(count.sql)
        .bind(...count.params)
        .first<{ total: number }>()
    : null;

  const { shown, has_more, next_cursor } = pageOf(pageResult.results, query.limit, (last) =>
    encodeCursor(fingerprint, requested, { occurredAt: last.occurred_at, id: last.id }),
  );
  return {
    object: "list",
    data: shown.map(toPublicEvent),
    has_more,
    next_cursor,
    window: {
      start: new Date(window.start).toISOString(),
      end: new Date(window.end).toISOString(),
      clamped: window.clamped,
    },
    ...(countResult ? { total: countResult.total } : {}),
    rowsRead: pageResult.meta.rows_read,
  };
}
