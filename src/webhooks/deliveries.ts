import * as z from "zod";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { hashId } from "../lib/ids";
import { openCursor, sealCursor } from "../lib/keyset-cursor";
import { listDeliveryRows } from "../store";
import { DELIVERY_STATUSES } from "./schema";

/**
 * GET /v1/webhooks/{id}/deliveries: the endpoint's delivery rows, newest event first, keyset on
 * (event_occurred_at, event_id) along the table's primary key. `status` and `event_id` are
 * residual filters on that range (an index for them would cost a row written per delivery).
 */

export const DELIVERY_LIST_PARAMS = ["limit", "after", "status", "event_id", "account_id"] as const;
const MAX_LIMIT = 1000;

export interface DeliveryListQuery {
  limit: number;
  after: string | null;
  status: string | null;
  eventId: string | null;
}

export function parseDeliveryQuery(
  params: Partial<Record<(typeof DELIVERY_LIST_PARAMS)[number], string>>,
): DeliveryListQuery {
  const limit = params.limit === undefined ? 20 : Number(params.limit);
  if (params.limit !== undefined && (!/^\d{1,4}$/.test(params.limit) || limit < 1 || limit > MAX_LIMIT)) {
    throw validationError("limit", `limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  if (params.status !== undefined && !(DELIVERY_STATUSES as readonly string[]).includes(params.status)) {
    throw validationError("status", `status must be one of ${DELIVERY_STATUSES.join(", ")}`);
  }
  if (params.event_id !== undefined && (params.event_id === "" || params.event_id.length > 80)) {
    throw validationError("event_id", "event_id must be an event id");
  }
  if (params.after !== undefined && (params.after === "" || params.after.length > 1024)) {
    throw validationError("after", "after is not a cursor returned by this API");
  }
  return {
    limit,
    after: params.after ?? null,
    status: params.status ?? null,
    eventId: params.event_id ?? null,
  };
}

/** The public id of a delivery: derived from its key, so it needs no column. */
export async function deliveryId(endpointId: string, eventId: string): Promise<string> {
  return `wdl_${await hashId(endpointId, eventId)}`;
}

const cursorSchema = z.object({ t: z.number(), e: z.string() });

export async function listDeliveries(env: Env, accountId: string, endpointId: string, q: DeliveryListQuery) {
  const fingerprint = (
    await hashId(accountId, endpointId, `status=${q.status ?? ""}`, `event_id=${q.eventId ?? ""}`)
  ).slice(0, 16);
  const position =
    q.after === null
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
    status: q.status,
    eventId: q.eventId,
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
