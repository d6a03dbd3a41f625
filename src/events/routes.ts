import * as z from "zod";
import { getAccountPlan } from "../accounts/plans";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { type App, commonErrors, jsonContent, route } from "../lib/openapi";
import {
  buildEventStatements,
  clampWindow,
  decodeCursor,
  encodeCursor,
  filterFingerprint,
  parseEventQuery,
  requestedWindow,
} from "./query";
import { EVENT_TYPES, trackingSchema } from "./record";
import { scanEvents } from "./scan";
import { toPublicEvent } from "./serialize";

export const eventSchema = z
  .object({
    id: z.string(),
    object: z.literal("event"),
    type: z.enum(EVENT_TYPES),
    occurred_at: z.string(),
    email_id: z.string(),
    message_id: z.string().nullable(),
    from: z.string().nullable(),
    from_domain: z.string().nullable(),
    recipient: z.string(),
    subject: z.string().nullable(),
    topic: z.string().nullable(),
    campaign: z.string().nullable(),
    template_id: z.string().nullable(),
    tags: z.array(z.string()),
    smtp_code: z.number().int().nullable(),
    smtp_response: z.string().nullable(),
    bounce_type: z.enum(["permanent", "transient", "undetermined"]).nullable(),
    bounce_classification: z.string().nullable(),
    complaint_type: z.string().nullable(),
    attempt: z.number().int().nullable(),
    tracking: trackingSchema.nullable(),
  })
  .meta({ id: "Event" });

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
  data: ReturnType<typeof toPublicEvent>[];
  has_more: boolean;
  next_cursor: string | null;
  window: { start: string; end: string; clamped: boolean };
  total?: number;
  /** D1's rows_read for the page's scan, exposed to tests and the benchmark only. */
  rowsRead: number;
  /** D1's rows_read for the count, when asked. */
  countRowsRead?: number;
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
  // The page reads at most PAGE_ROW_BUDGET rows and may come back short, with a cursor where it stopped.
  // count=true is exact: one COUNT over the same access path, run beside it (cost in BENCHMARKS.md).
  const { count } = buildEventStatements(accountId, query.filters, window, null, query.limit);
  const [scan, countResult] = await Promise.all([
    scanEvents(env, accountId, query.filters, window, cursor?.position ?? null, { limit: query.limit }),
    query.count
      ? env.DB.prepare(count.sql)
          .bind(...count.params)
          .all<{ total: number }>()
      : null,
  ]);
  const more = scan.hasMore && scan.next !== null;

  return {
    object: "list",
    data: scan.rows.map(toPublicEvent),
    has_more: more,
    next_cursor: more && scan.next ? encodeCursor(fingerprint, requested, scan.next) : null,
    window: {
      start: new Date(window.start).toISOString(),
      end: new Date(window.end).toISOString(),
      clamped: window.clamped,
    },
    ...(countResult ? { total: countResult.results[0]?.total ?? 0 } : {}),
    rowsRead: scan.rowsRead,
    ...(countResult ? { countRowsRead: countResult.meta.rows_read } : {}),
  };
}

export function registerEventRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/events",
      summary: "List events, newest first",
      description:
        "Exact-match filters, keyset pagination with `after`, and a window clamped silently to the plan's retention. " +
        "A page reads at most 10,000 rows: with a rare filter it may hold fewer than `limit` events (even none) " +
        "with `has_more: true`; keep paging with `next_cursor` until `has_more` is false.",
      tags: ["events"],
      security: [{ bearer: [] }],
      request: { query: eventQueryParams },
      responses: { 200: jsonContent(eventListSchema, "A page of events"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c) => {
      const params = new URL(c.req.url).searchParams;
      const accountId = actingAccount(principalOf(c), params.get("account_id"));
      const {
        rowsRead: _rowsRead,
        countRowsRead: _countRowsRead,
        ...page
      } = await listEvents(c.env, accountId, params);
      return c.json(page);
    },
  );
}
