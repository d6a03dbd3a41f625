import * as z from "zod";
import { validationError } from "../lib/errors";
import { asciiDomain } from "../lib/idna";
import { hashId } from "../lib/ids";
import { cursorTime, openCursor, sealCursor } from "../lib/keyset-cursor";
import {
  accountIdParam,
  booleanParam,
  cursorParam,
  DAY_MS,
  exactParam,
  integerParam,
  limitParam,
  listParam,
  MAX_LIMIT,
  tagParam,
  timestampParam,
  topicParam,
} from "../lib/params";
import { parseQuery } from "../lib/validate";
import { emailAddressSchema } from "../suppressions/address";
import { EVENT_TYPES, type EventType, MAX_TAGS } from "./record";

export { DEFAULT_LIMIT, MAX_LIMIT } from "../lib/params";

/**
 * GET /v1/events parameters (SPEC §9) → a validated query, its clamped window, and the SQL that
 * answers it. Pure apart from hashing; the route runs the statements.
 */

export const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

const describe = <T extends z.ZodType>(schema: T, description: string) =>
  schema.optional().meta({ description });

/** The window of GET /v1/events (SPEC §9), shared by every route that reads a window of events. */
export const eventWindowParams = {
  start: describe(timestampParam, "inclusive; default 24 hours before end"),
  end: describe(timestampParam, "exclusive; default now"),
  days: describe(integerParam(1, 90), "1-90: start = now - days; not with start"),
};

/** The filters of GET /v1/events (SPEC §9), exact matches. */
export const eventFilterParams = {
  event_type: describe(
    listParam(EVENT_TYPES.length, z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(", ")}` })),
    "one event type or several (any of)",
  ),
  recipient: describe(
    emailAddressSchema,
    "an address, exact, case-insensitive; an internationalised domain in either spelling",
  ),
  email_id: describe(exactParam(256), "exact"),
  message_id: describe(exactParam(998), "exact"),
  topic: describe(topicParam, "exact"),
  template_id: describe(exactParam(256), "exact"),
  campaign: describe(exactParam(256), "exact, case-sensitive"),
  domain: describe(
    z.string().trim().toLowerCase().regex(HOSTNAME, "must be a hostname such as mail.example.com"),
    "a sending domain the account has sent from (a rule of the account's data: another one is 400)",
  ),
  recipient_domain: describe(
    z
      .string()
      .transform((v) => asciiDomain(v.trim().toLowerCase()) ?? v.trim().toLowerCase())
      .refine((v) => HOSTNAME.test(v), "must be a hostname such as example.com")
      .meta({ pattern: HOSTNAME.source }),
    "the domain of recipient, exact, case-insensitive; an internationalised domain in either spelling",
  ),
  tags: describe(listParam(MAX_TAGS, tagParam), "events carrying any of these tags (at most 10)"),
};

/** GET /v1/events's query: it validates the request and is what /openapi.json shows. */
export const eventQuerySchema = z.object({
  ...eventWindowParams,
  ...eventFilterParams,
  limit: limitParam(MAX_LIMIT),
  after: cursorParam(512),
  count: describe(booleanParam, "true adds total"),
  account_id: accountIdParam,
});
export type EventQueryParams = z.output<typeof eventQuerySchema>;

export interface EventFilters {
  types: EventType[] | null;
  recipient: string | null;
  emailId: string | null;
  messageId: string | null;
  topic: string | null;
  templateId: string | null;
  campaign: string | null;
  domain: string | null;
  recipientDomain: string | null;
  tags: string[] | null;
}

export interface EventQuery {
  filters: EventFilters;
  start: number | null;
  end: number | null;
  days: number | null;
  limit: number;
  after: string | null;
  count: boolean;
  accountId: string | null;
}

/** One ISO 8601 timestamp parameter in epoch ms, or `400 validation_error` naming it. */
export function parseTimestamp(param: string, value: string): number {
  const parsed = timestampParam.safeParse(value);
  if (!parsed.success) throw validationError(param, `${param} must be an ISO 8601 timestamp`);
  return parsed.data;
}

/** The cross-field rules of a window: `days` not with `start`, `start` not after `end`. */
export function checkWindowParams(p: { start?: number; end?: number; days?: number }): void {
  if (p.days !== undefined && p.start !== undefined)
    throw validationError("days", "days cannot be combined with start");
  if (p.start !== undefined && p.end !== undefined && p.start > p.end)
    throw validationError("start", "start must not be after end");
}

/** The parsed query in the shape the statements are built from, after the cross-field rules. */
export function toEventQuery(p: EventQueryParams): EventQuery {
  checkWindowParams(p);
  return {
    filters: {
      types: (p.event_type as EventType[] | undefined) ?? null,
      recipient: p.recipient ?? null,
      emailId: p.email_id ?? null,
      messageId: p.message_id ?? null,
      topic: p.topic ?? null,
      templateId: p.template_id ?? null,
      campaign: p.campaign ?? null,
      domain: p.domain ?? null,
      recipientDomain: p.recipient_domain ?? null,
      tags: p.tags ?? null,
    },
    start: p.start ?? null,
    end: p.end ?? null,
    days: p.days ?? null,
    limit: p.limit,
    after: p.after ?? null,
    count: p.count ?? false,
    accountId: p.account_id ?? null,
  };
}

/** GET /v1/events parameters → a validated query (the route's schema, then the cross-field rules). */
export function parseEventQuery(params: URLSearchParams): EventQuery {
  return toEventQuery(parseQuery(eventQuerySchema, params));
}

export interface Window {
  start: number;
  end: number;
  clamped: boolean;
}

/** The requested window before clamping: explicit bounds, `days`, or the last 24 hours. */
export function requestedWindow(query: EventQuery, now: number): { start: number; end: number } {
  const end = query.end ?? now;
  const start = query.start ?? (query.days !== null ? now - query.days * DAY_MS : end - DAY_MS);
  if (start > end) {
    const param = query.start !== null ? "start" : query.days !== null ? "days" : "end";
    throw validationError(param, "the window's start is after its end");
  }
  return { start, end };
}

/** Clamps a window to the plan's retention; a window wholly outside it becomes empty. */
export function clampWindow(
  window: { start: number; end: number },
  retentionDays: number,
  now: number,
): Window {
  const earliest = now - retentionDays * DAY_MS;
  if (window.start >= earliest) return { ...window, clamped: false };
  return { start: earliest, end: Math.max(window.end, earliest), clamped: true };
}

/** A position in the newest-first order: the last event a page returned. */
export interface CursorPosition {
  occurredAt: number;
  id: string;
}

/**
 * The cursor is bound to the account, the filters and the window as the client gave them
 * (`limit`, `count` and `after` excluded): reused with anything else changed it is refused.
 * It carries the resolved window, so "the last 24 hours" means the same instant range on every page.
 */
export async function filterFingerprint(accountId: string, params: URLSearchParams): Promise<string> {
  const entries = [...params]
    .filter(([name]) => name !== "limit" && name !== "after" && name !== "count")
    .map(
      ([name, value]) =>
        `${name}=${name === "recipient" || name === "domain" ? value.trim().toLowerCase() : value}`,
    )
    .sort();
  return (await hashId(accountId, ...entries)).slice(0, 16);
}

const eventCursorSchema = z.object({
  s: cursorTime,
  e: cursorTime,
  t: cursorTime,
  i: z.string().max(128),
  /** The chain's total (count=true), counted on its first page (SPEC §18: once per paging chain). */
  n: z.number().int().min(0).optional(),
});

export function encodeCursor(
  fingerprint: string,
  window: { start: number; end: number },
  position: CursorPosition,
  total?: number,
): string {
  return sealCursor(fingerprint, {
    s: window.start,
    e: window.end,
    t: position.occurredAt,
    i: position.id,
    ...(total !== undefined ? { n: total } : {}),
  });
}

export function decodeCursor(
  cursor: string,
  fingerprint: string,
): { window: { start: number; end: number }; position: CursorPosition; total?: number } {
  const body = openCursor(
    cursor,
    fingerprint,
    eventCursorSchema,
    "after belongs to a query with other filters or window; repeat them unchanged",
  );
  return {
    window: { start: body.s, end: body.e },
    position: { occurredAt: body.t, id: body.i },
    ...(body.n !== undefined ? { total: body.n } : {}),
  };
}
