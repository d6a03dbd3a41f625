import * as z from "zod";
import { openCursor, sealCursor } from "../lib/cursor";
import { validationError } from "../lib/errors";
import { hashId } from "../lib/ids";
import { EVENT_TYPES, type EventType, TAG_PATTERN, TOPIC_PATTERN } from "./record";

/**
 * GET /v1/events parameters (SPEC §9) → a validated query, its clamped window, and the SQL that
 * answers it. Pure apart from hashing; the route runs the statements.
 */

const DAY_MS = 86_400_000;
export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 1000;

const KNOWN_PARAMS = [
  "start",
  "end",
  "days",
  "event_type",
  "recipient",
  "email_id",
  "message_id",
  "topic",
  "template_id",
  "campaign",
  "domain",
  "tags",
  "limit",
  "after",
  "count",
  "account_id",
] as const;
type KnownParam = (typeof KNOWN_PARAMS)[number];

export interface EventFilters {
  types: EventType[] | null;
  recipient: string | null;
  emailId: string | null;
  messageId: string | null;
  topic: string | null;
  templateId: string | null;
  campaign: string | null;
  domain: string | null;
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

const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;
const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

export function parseTimestamp(param: string, value: string): number {
  if (!ISO_8601.test(value)) throw validationError(param, `${param} must be an ISO 8601 timestamp`);
  const hasZone = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(value) && value.length > 10;
  const ms = Date.parse(hasZone ? value : value.length === 10 ? `${value}T00:00:00Z` : `${value}Z`);
  if (Number.isNaN(ms)) throw validationError(param, `${param} must be an ISO 8601 timestamp`);
  return ms;
}

function parseInteger(param: string, value: string, min: number, max: number): number {
  if (!/^\d{1,7}$/.test(value))
    throw validationError(param, `${param} must be an integer from ${min} to ${max}`);
  const n = Number(value);
  if (n < min || n > max) throw validationError(param, `${param} must be an integer from ${min} to ${max}`);
  return n;
}

function parseList(
  param: string,
  value: string,
  max: number,
  check: (item: string) => string | null,
): string[] {
  const items = [...new Set(value.split(",").map((s) => s.trim()))];
  if (items.some((s) => s === ""))
    throw validationError(param, `${param} must be a comma-separated list without empty items`);
  if (items.length > max) throw validationError(param, `${param} takes at most ${max} values`);
  for (const item of items) {
    const problem = check(item);
    if (problem) throw validationError(param, problem);
  }
  return items;
}

function exact(param: string, value: string, max: number): string {
  if (value.trim() === "") throw validationError(param, `${param} must not be empty`);
  if (value.length > max) throw validationError(param, `${param} must be at most ${max} characters`);
  return value;
}

export function parseEventQuery(params: URLSearchParams): EventQuery {
  const seen = new Map<KnownParam, string>();
  for (const [name, value] of params) {
    if (!(KNOWN_PARAMS as readonly string[]).includes(name)) {
      throw validationError(name, `unknown parameter ${name}`);
    }
    if (seen.has(name as KnownParam)) throw validationError(name, `${name} may be given once`);
    seen.set(name as KnownParam, value);
  }
  const get = (name: KnownParam) => seen.get(name) ?? null;
  const map = <T>(name: KnownParam, fn: (value: string) => T): T | null => {
    const value = get(name);
    return value === null ? null : fn(value);
  };

  const start = map("start", (v) => parseTimestamp("start", v));
  const end = map("end", (v) => parseTimestamp("end", v));
  const days = map("days", (v) => parseInteger("days", v, 1, 90));
  if (days !== null && start !== null) throw validationError("days", "days cannot be combined with start");
  if (start !== null && end !== null && start > end)
    throw validationError("start", "start must not be after end");

  const filters: EventFilters = {
    types: map(
      "event_type",
      (v) =>
        parseList("event_type", v, EVENT_TYPES.length, (t) =>
          (EVENT_TYPES as readonly string[]).includes(t)
            ? null
            : `event_type must be one of ${EVENT_TYPES.join(", ")}`,
        ) as EventType[],
    ),
    recipient: map("recipient", (v) => exact("recipient", v.trim().toLowerCase(), 320)),
    emailId: map("email_id", (v) => exact("email_id", v, 256)),
    messageId: map("message_id", (v) => exact("message_id", v, 998)),
    topic: map("topic", (v) => {
      if (!TOPIC_PATTERN.test(v))
        throw validationError("topic", "topic must be 1-64 characters of [a-z0-9_.-]");
      return v;
    }),
    templateId: map("template_id", (v) => exact("template_id", v, 256)),
    campaign: map("campaign", (v) => exact("campaign", v, 256)),
    domain: map("domain", (v) => {
      const host = v.trim().toLowerCase();
      if (!HOSTNAME.test(host))
        throw validationError("domain", "domain must be a hostname such as mail.example.com");
      return host;
    }),
    tags: map("tags", (v) =>
      parseList("tags", v, 10, (t) =>
        TAG_PATTERN.test(t) ? null : "tags are 1-64 characters of [A-Za-z0-9_-]",
      ),
    ),
  };

  const count = map("count", (v) => {
    if (v !== "true" && v !== "false") throw validationError("count", "count must be true or false");
    return v === "true";
  });
  const after = map("after", (v) => exact("after", v, 512));
  const accountId = map("account_id", (v) => exact("account_id", v, 64));

  return {
    filters,
    start,
    end,
    days,
    limit: map("limit", (v) => parseInteger("limit", v, 1, MAX_LIMIT)) ?? DEFAULT_LIMIT,
    after,
    count: count ?? false,
    accountId,
  };
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

const eventCursorSchema = z.object({ s: z.number(), e: z.number(), t: z.number(), i: z.string() });

export function encodeCursor(
  fingerprint: string,
  window: { start: number; end: number },
  position: CursorPosition,
): string {
  return sealCursor(fingerprint, { s: window.start, e: window.end, t: position.occurredAt, i: position.id });
}

export function decodeCursor(
  cursor: string,
  fingerprint: string,
): { window: { start: number; end: number }; position: CursorPosition } {
  const body = openCursor(
    cursor,
    fingerprint,
    eventCursorSchema,
    "after belongs to a query with other filters or window; repeat them unchanged",
  );
  return { window: { start: body.s, end: body.e }, position: { occurredAt: body.t, id: body.i } };
}

export interface Statement {
  sql: string;
  params: (string | number)[];
}

/**
 * The page query and its count. Without stored statistics SQLite prefers the primary-key range over
 * an equality index, so the two selective filters name their index explicitly. After the first
 * page the cursor replaces the window's end as the upper bound, as one row-value range on the
 * index: with both bounds SQLite ranges on the end and steps over every row already returned.
 */
export function buildEventStatements(
  accountId: string,
  filters: EventFilters,
  window: Window,
  position: CursorPosition | null,
  limit: number,
): { page: Statement; count: Statement } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const eq = (column: string, value: string | null) => {
    if (value === null) return;
    where.push(`${column} = ?`);
    params.push(value);
  };
  eq("email_id", filters.emailId);
  eq("recipient", filters.recipient);
  eq("message_id", filters.messageId);
  eq("topic", filters.topic);
  eq("template_id", filters.templateId);
  eq("campaign", filters.campaign);
  eq("from_domain", filters.domain);
  if (filters.types) {
    where.push(`type IN (${filters.types.map(() => "?").join(", ")})`);
    params.push(...filters.types);
  }
  if (filters.tags) {
    where.push(
      `EXISTS (SELECT 1 FROM json_each(events.tags) WHERE json_each.value IN (${filters.tags.map(() => "?").join(", ")}))`,
    );
    params.push(...filters.tags);
  }
  const index =
    filters.emailId !== null
      ? " INDEXED BY events_email_idx"
      : filters.recipient !== null
        ? " INDEXED BY events_recipient_idx"
        : "";
  const conditions = (upper: string) => ["account_id = ?", "occurred_at >= ?", upper, ...where].join(" AND ");
  const upper = position ? "(occurred_at, id) < (?, ?)" : "occurred_at < ?";
  const upperParams = position ? [position.occurredAt, position.id] : [window.end];
  return {
    page: {
      sql: `SELECT * FROM events${index} WHERE ${conditions(upper)} ORDER BY occurred_at DESC, id DESC LIMIT ?`,
      params: [accountId, window.start, ...upperParams, ...params, limit + 1],
    },
    count: {
      sql: `SELECT COUNT(*) AS total FROM events${index} WHERE ${conditions("occurred_at < ?")}`,
      params: [accountId, window.start, window.end, ...params],
    },
  };
}
