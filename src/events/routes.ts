import * as z from "zod";
import { getAccountPlan } from "../accounts/plans";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { type App, BEARER, commonErrors, jsonContent, route } from "../lib/openapi";
import {
  buildEventStatements,
  clampWindow,
  decodeCursor,
  encodeCursor,
  filterFingerprint,
  parseEventQuery,
  requestedWindow,
} from "./query";
import { type EventDbRow, eventSchema, type PublicEvent, toPublicEvent } from "./serialize";

export { eventSchema };

const eventListSchema = z
  .object({
    object: z.literal("list"),
    data: z.array(eventSchema),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
    window: z.object({ start: z.string(), end: z.string(), clamped: z.boolean() }),
    total: z.number().int().optional(),
  })
  .meta({ id: "EventList" });

const q = (description: string) => z.string().optional().meta({ description });
const eventQueryParams = z.object({
  start: q("ISO 8601, inclusive; default 24 hours before end"),
  end: q("ISO 8601, exclusive; default now"),
  days: q("1-90: start = now - days; not with start"),
  event_type: q("one event type or a comma list"),
  recipient: q("exact, case-insensitive"),
  email_id: q("exact"),
  message_id: q("exact"),
  topic: q("exact"),
  template_id: q("exact"),
  campaign: q("exact, case-sensitive"),
  domain: q("a sending domain the account has sent from"),
  tags: q("events carrying any of up to 10 comma-separated tags"),
  limit: q("1-1000, default 20"),
  after: q("next_cursor of the previous page; repeat the window and filters unchanged"),
  count: q("true adds total"),
  account_id: q("admin tokens only: the account to read"),
});

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

/** Runs GET /v1/events for an account. */
export async function listEvents(
  env: Env,
  accountId: string,
  params: URLSearchParams,
  now = Date.now(),
): Promise<EventPage> {
  const query = parseEventQuery(params);
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

  const rows = pageResult.results;
  const hasMore = rows.length > query.limit;
  const shown = hasMore ? rows.slice(0, query.limit) : rows;
  const last = shown[shown.length - 1];
  return {
    object: "list",
    data: shown.map(toPublicEvent),
    has_more: hasMore,
    next_cursor:
      hasMore && last
        ? encodeCursor(fingerprint, requested, { occurredAt: last.occurred_at, id: last.id })
        : null,
    window: {
      start: new Date(window.start).toISOString(),
      end: new Date(window.end).toISOString(),
      clamped: window.clamped,
    },
    ...(countResult ? { total: countResult.total } : {}),
    rowsRead: pageResult.meta.rows_read,
  };
}

export function registerEventRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/events",
      operationId: "listEvents",
      summary: "List events, newest first",
      description:
        "Exact-match filters, keyset pagination with `after`, and a window clamped silently to the plan's retention.",
      tags: ["events"],
      security: BEARER,
      request: { query: eventQueryParams },
      responses: { 200: jsonContent(eventListSchema, "A page of events"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c) => {
      const params = new URL(c.req.url).searchParams;
      const accountId = actingAccount(principalOf(c), params.get("account_id"));
      const { rowsRead: _rowsRead, ...page } = await listEvents(c.env, accountId, params);
      return c.json(page);
    },
  );
}
