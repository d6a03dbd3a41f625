import * as z from "zod";
import type { Env } from "../env";
import { hashId } from "../lib/ids";
import { openCursor, sealCursor } from "../lib/keyset-cursor";
import { accountIdParam, cursorParam, exactParam, limitParam, MAX_LIMIT } from "../lib/params";
import { listDeliveryRows } from "../store";
import { DELIVERY_STATUSES } from "./schema";

/**
 * GET /v1/webhooks/{id}/deliveries: the endpoint's delivery rows, newest event first, keyset on
 * (event_occurred_at, event_id) along the table's primary key. `status` and `event_id` are
 * residual filters on that range (an index for them would cost a row written per delivery).
 */

/** GET /v1/webhooks/{id}/deliveries's query: it validates the request and is what /openapi.json shows. */
export const deliveryQuerySchema = z.object({
  limit: limitParam(MAX_LIMIT),
  after: cursorParam(1024).meta({
    description: "next_cursor of the previous page; repeat status and event_id unchanged",
  }),
  status: z
    .enum(DELIVERY_STATUSES, { error: `must be one of ${DELIVERY_STATUSES.join(", ")}` })
    .optional()
    .meta({ description: "only deliveries in this state" }),
  event_id: exactParam(80).optional().meta({ description: "one event's delivery" }),
  account_id: accountIdParam,
});

export interface DeliveryListQuery {
  limit: number;
  after?: string;
  status?: (typeof DELIVERY_STATUSES)[number];
  event_id?: string;
}

/** The public id of a delivery: derived from its key, so it needs no column. */
export async function deliveryId(endpointId: string, eventId: string): Promise<string> {
  return `wdl_${await hashId(endpointId, eventId)}`;
}

const cursorSchema = z.object({ t: z.number(), e: z.string() });

export async function listDeliveries(env: Env, accountId: string, endpointId: string, q: DeliveryListQuery) {
  const fingerprint = (
    await hashId(accountId, endpointId, `status=${q.status ?? ""}`, `event_id=${q.event_id ?? ""}`)
  ).slice(0, 16);
  const position =
    q.after === undefined
      ? null
      : openCursor(
          q.after,
          fingerprint,
          cursorSchema,
          "after belongs to another listing; repeat status and event_id unchanged",
        );
  const results = await listDeliveryRows(env.DB, {
    accountId,
    endpointId,
    before: position ? { occurredAt: position.t, eventId: position.e } : null,
    status: q.status ?? null,
    eventId: q.event_id ?? null,
    limit: q.limit + 1,
  });
  const hasMore = results.length > q.limit;
  const shown = hasMore ? results.slice(0, q.limit) : results;
  const last = shown[shown.length - 1];
  return {
    object: "list" as const,
    data: await Promise.all(
      shown.map(async (r) => ({
        id: await deliveryId(endpointId, r.event_id),
        event_id: r.event_id,
        event_type: r.event_type,
        status: r.status,
        attempts: r.attempts,
        last_attempt_at: new Date(r.last_attempt_at).toISOString(),
        next_attempt_at: r.next_attempt_at === null ? null : new Date(r.next_attempt_at).toISOString(),
        response_status: r.response_status,
        error: r.error,
      })),
    ),
    has_more: hasMore,
    next_cursor:
      hasMore && last ? sealCursor(fingerprint, { t: last.event_occurred_at, e: last.event_id }) : null,
  };
}
