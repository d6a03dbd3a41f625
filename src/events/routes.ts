import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { type App, BEARER, commonErrors, jsonContent, route } from "../lib/openapi";
import { type EventPage, listEvents } from "./list";
import { eventQuerySchema, toEventQuery } from "./query";
import { eventSchema } from "./serialize";

export { type EventPage, eventSchema, listEvents };

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

export function registerEventRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/events",
      operationId: "listEvents",
      summary: "List events, newest first",
      description:
        "Exact-match filters, keyset pagination with `after`, and a window clamped silently to the plan's retention. " +
        "A page reads at most 10,000 rows: with a rare filter it may hold fewer than `limit` events (even none) " +
        "with `has_more: true`; keep paging with `next_cursor` until `has_more` is false. " +
        "`count=true` is exact and counted on a chain's first page (at most once a minute per account and query; " +
        "later pages carry it in the cursor): with `event_type` as the only filter it is read from the hourly " +
        "event counts (one row per hour of the window, plus the events of its partial first and last hours); " +
        "with any other filter, or after an erasure that removed events of the window, it counts the window's events. " +
        "Rules between fields (400 naming the parameter): `days` is not combined with `start`; `start` is not " +
        "after `end`; `after` repeats the window and filters of the page it came from (`limit` may change); " +
        "`domain` is a sending domain the account has sent from.",
      tags: ["events"],
      security: BEARER,
      request: { query: eventQuerySchema },
      responses: { 200: jsonContent(eventListSchema, "A page of events"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const params = new URL(c.req.url).searchParams;
      const {
        rowsRead: _rowsRead,
        countRowsRead: _countRowsRead,
        ...page
      } = await listEvents(c.env, accountId, params, Date.now(), toEventQuery(query));
      return c.json(page);
    },
  );
}
