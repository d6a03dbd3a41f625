import * as z from "zod";
import { getAccountPlan } from "../../accounts/plans";
import type { Env } from "../../env";
import { type CursorPosition, clampWindow, parseTimestamp, type Window } from "../../events/query";
import { toPublicEvent } from "../../events/serialize";
import { ApiError, validationError } from "../../lib/errors";
import { hashId } from "../../lib/ids";
import { openCursor, sealCursor } from "../../lib/keyset-cursor";
import { log } from "../../lib/log";
import { DAY_MS } from "../../lib/params";
import { countMatches, PAGE_ROW_BUDGET, type ScanEnd as ScanResult, type ScanRow, scan } from "../../store";
import { BOUNCE_CLASS_SQL, isBounceClass } from "./bounce-class";
import { KNOWN_SPARKPOST_TYPES, type SparkPostType, toSparkPostEvent } from "./event-map";
import {
  ABSENT_FILTERS,
  compileFilters,
  KEYWORD_FILTERS,
  type KeywordFilter,
  keywordsOf,
  type SparkPostFilters,
} from "./filters";

/** GET /compat/sparkpost/api/v1/events/message: parameters, cursor and the streamed page (SPEC §16). */

export const SPARKPOST_PREFIX = "/compat/sparkpost";
export const MESSAGE_EVENTS_PATH = `${SPARKPOST_PREFIX}/api/v1/events/message`;
export const DEFAULT_PER_PAGE = 1000;
export const MAX_PER_PAGE = 10_000;
const MAX_VALUES = 1000;

const LIST_FILTERS = [
  "events",
  "event_ids",
  "recipients",
  "recipient_domains",
  "from_addresses",
  "sending_domains",
  "subjects",
  "bounce_classes",
  "reasons",
  "campaigns",
  "templates",
  "messages",
  "message_ids",
  "transmissions",
  "transmission_ids",
  ...ABSENT_FILTERS,
] as const;
export const SPARKPOST_PARAMS = [
  "from",
  "to",
  "cursor",
  "per_page",
  "delimiter",
  ...LIST_FILTERS,
  "account_id",
] as const;
type Param = (typeof SPARKPOST_PARAMS)[number];

export interface SparkPostQuery {
  from: number | null;
  to: number | null;
  /** null: `initial`. */
  cursor: string | null;
  perPage: number;
  filters: SparkPostFilters;
  accountId: string | null;
  /** The parameters as given, in order, less cursor and per_page: repeated in links.next. */
  repeat: [string, string][];
}

function integer(param: string, value: string, min: number, max: number): number {
  if (!/^\d{1,6}$/.test(value) || Number(value) < min || Number(value) > max)
    throw validationError(param, `${param} must be an integer from ${min} to ${max}`);
  return Number(value);
}

export function parseSparkPostQuery(params: URLSearchParams): SparkPostQuery {
  const seen = new Map<Param, string>();
  for (const [name, value] of params) {
    if (!(SPARKPOST_PARAMS as readonly string[]).includes(name))
      throw validationError(name, `unknown parameter ${name}`);
    if (seen.has(name as Param)) throw validationError(name, `${name} may be given once`);
    seen.set(name as Param, value);
  }
  const delimiter = seen.get("delimiter") ?? ",";
  if ([...delimiter].length !== 1) throw validationError("delimiter", "delimiter must be one character");
  const list = (name: Param, check?: (item: string) => string | null): string[] | null => {
    const value = seen.get(name);
    if (value === undefined) return null;
    const items = [...new Set(value.split(delimiter).map((s) => s.trim()))];
    if (items.some((s) => s === ""))
      throw validationError(
        name,
        `${name} must be a ${delimiter === "," ? "comma" : `'${delimiter}'`}-delimited list without empty items`,
      );
    if (items.length > MAX_VALUES) throw validationError(name, `${name} takes at most ${MAX_VALUES} values`);
    for (const item of items) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
      if (/[\u0000-\u001f\u007f]/.test(item))
        throw validationError(name, `${name} values must not hold control characters`);
      const problem = check?.(item);
      if (problem) throw validationError(name, problem);
    }
    return items;
  };
  const merge = (a: string[] | null, b: string[] | null) =>
    a === null && b === null ? null : [...new Set([...(a ?? []), ...(b ?? [])])];

  const events = list("events", (t) =>
    KNOWN_SPARKPOST_TYPES.includes(t) ? null : `events: ${t} is not a SparkPost message event type`,
  ) as SparkPostType[] | null;
  const bounceClasses = list("bounce_classes", (c) =>
    /^\d{1,3}$/.test(c) && isBounceClass(Number(c))
      ? null
      : `bounce_classes: ${c} is not a bounce classification code`,
  );
  const keywords: SparkPostFilters["keywords"] = {};
  for (const name of Object.keys(KEYWORD_FILTERS) as KeywordFilter[]) {
    const values = list(name, (v) =>
      keywordsOf(v, KEYWORD_FILTERS[name].periods).length > 0 ? null : `${name}: ${v} holds no keyword`,
    );
    if (values !== null) keywords[name] = values;
  }
  if (seen.has("ab_test_versions") && !seen.has("ab_tests"))
    throw validationError("ab_tests", "ab_tests is required with ab_test_versions");
  let impossible: string | null = null;
  for (const name of ABSENT_FILTERS) if (list(name) !== null) impossible ??= name;

  const from = seen.has("from") ? parseTimestamp("from", seen.get("from") ?? "") : null;
  const to = seen.has("to") ? parseTimestamp("to", seen.get("to") ?? "") : null;
  if (from !== null && to !== null && from >= to) throw validationError("from", "from must be before to");
  const cursor = seen.get("cursor");
  if (cursor !== undefined && (cursor === "" || cursor.length > 1024))
    throw validationError("cursor", "cursor must be initial or the cursor of a links.next");
  const accountId = seen.get("account_id") ?? null;
  if (accountId !== null && !/^[A-Za-z0-9_.:-]{1,64}$/.test(accountId))
    throw validationError("account_id", "account_id must be an account id");

  return {
    from,
    to,
    cursor: cursor === undefined || cursor === "initial" ? null : cursor,
    perPage: seen.has("per_page")
      ? integer("per_page", seen.get("per_page") ?? "", 1, MAX_PER_PAGE)
      : DEFAULT_PER_PAGE,
    filters: {
      events,
      eventIds: list("event_ids"),
      recipients: list("recipients")?.map((r) => r.toLowerCase()) ?? null,
      fromAddresses: list("from_addresses")?.map((r) => r.toLowerCase()) ?? null,
      bounceClasses: bounceClasses?.map(Number) ?? null,
      messageIds: merge(list("messages"), list("message_ids")),
      transmissionIds: merge(list("transmissions"), list("transmission_ids")),
      keywords,
      impossible,
    },
    accountId,
    repeat: [...params].filter(([name]) => name !== "cursor" && name !== "per_page"),
  };
}

/**
 * The window asked for: `from` inclusive (default 24 hours ago, or 24 hours before `to` when `to` is
 * earlier than that), `to` exclusive (default now).
 */
export function sparkPostWindow(query: SparkPostQuery, now: number): { start: number; end: number } {
  const end = query.to ?? now;
  const start = query.from ?? Math.min(now, end) - DAY_MS;
  if (start >= end) throw validationError(query.from !== null ? "from" : "to", "from must be before to");
  return { start, end };
}

const cursorSchema = z.object({ s: z.number(), e: z.number(), t: z.number(), i: z.string(), n: z.number() });

interface CursorState {
  window: { start: number; end: number };
  position: CursorPosition;
  total: number;
}

const fingerprintOf = async (accountId: string, repeat: [string, string][]) =>
  (await hashId(accountId, ...repeat.map(([n, v]) => `${n}=${v}`).sort())).slice(0, 16);

/** openCursor's message for a cursor of another search; recognised below and reworded for `cursor`. */
const OTHER_SEARCH = "cursor of another search";

function openSparkPostCursor(cursor: string, fingerprint: string): CursorState {
  try {
    const c = openCursor(cursor, fingerprint, cursorSchema, OTHER_SEARCH);
    return { window: { start: c.s, end: c.e }, position: { occurredAt: c.t, id: c.i }, total: c.n };
  } catch (err) {
    if (err instanceof ApiError)
      throw validationError(
        "cursor",
        err.message === OTHER_SEARCH
          ? "cursor belongs to a search with other filters or dates; follow links.next as given"
          : "cursor is not one this API returned",
      );
    throw err;
  }
}

export interface SparkPostPage {
  /** The body's events, chunk by chunk, as JSON texts. */
  chunks: AsyncGenerator<string[], ScanResult>;
  totalCount: number;
  window: Window;
  linkFor: (next: CursorPosition | null) => string | null;
  countRowsRead: number;
}

/**
 * Validates everything and computes total_count (initial page only: later pages carry it in the
 * cursor, so they stay within the 10,000-row budget), then hands back the page's scan, to be
 * streamed. Throws ApiError before any byte.
 */
export async function openSparkPostPage(
  env: Env,
  accountId: string,
  query: SparkPostQuery,
  now = Date.now(),
  budget = PAGE_ROW_BUDGET,
): Promise<SparkPostPage> {
  const fingerprint = await fingerprintOf(accountId, query.repeat);
  const state = query.cursor === null ? null : openSparkPostCursor(query.cursor, fingerprint);
  const requested = state?.window ?? sparkPostWindow(query, now);
  const plan = await getAccountPlan(env, accountId);
  const window = clampWindow(requested, plan.retention_days, now);
  const compiled = compileFilters(query.filters);
  const match = compiled.sql === null ? null : { sql: compiled.sql, params: compiled.params };
  let totalCount = state?.total ?? 0;
  let countRowsRead = 0;
  if (state === null) {
    const counted = await countMatches(env.DB, accountId, window, compiled.access, match);
    totalCount = counted.total;
    countRowsRead = counted.rowsRead;
  }
  const walk = scan(env.DB, {
    accountId,
    window,
    path: compiled.access,
    match,
    columns: `${BOUNCE_CLASS_SQL} AS _bounce_class`,
    from: state?.position ?? null,
    limit: query.perPage,
    budget,
  });
  async function* chunks(): AsyncGenerator<string[], ScanResult> {
    for (;;) {
      const step = await walk.next();
      if (step.done) return step.value;
      yield step.value.map((row: ScanRow) =>
        JSON.stringify(toSparkPostEvent(toPublicEvent(row), (row._bounce_class as number | null) ?? null)),
      );
    }
  }
  const linkFor = (next: CursorPosition | null) => {
    if (next === null) return null;
    const params = new URLSearchParams(query.repeat);
    params.set("per_page", String(query.perPage));
    params.set(
      "cursor",
      sealCursor(fingerprint, {
        s: requested.start,
        e: requested.end,
        t: next.occurredAt,
        i: next.id,
        n: totalCount,
      }),
    );
    return `${MESSAGE_EVENTS_PATH}?${params}`;
  };
  return { chunks: chunks(), totalCount, window, linkFor, countRowsRead };
}

/** The page as a streamed JSON body: `{"results":[…],"total_count":n,"links":{…}}`. */
export function streamSparkPostPage(
  page: SparkPostPage,
  onDone?: (result: ScanResult) => void,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let first = true;
  let opened = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          let text = opened ? "" : '{"results":[';
          opened = true;
          for (;;) {
            const step = await page.chunks.next();
            if (step.done) {
              const next = page.linkFor(step.value.next);
              text += `],"total_count":${page.totalCount},"links":${JSON.stringify(next === null ? {} : { next })}}`;
              controller.enqueue(encoder.encode(text));
              controller.close();
              onDone?.(step.value);
              return;
            }
            if (step.value.length === 0) continue;
            text += (first ? "" : ",") + step.value.join(",");
            first = false;
            controller.enqueue(encoder.encode(text));
            return;
          }
        } catch (err) {
          // Headers are sent: an aborted body is the only signal left; the log says why.
          log("error", "SparkPost page failed mid-stream", { error: String(err) });
          controller.error(err);
        }
      },
    },
    { highWaterMark: 1 },
  );
}
