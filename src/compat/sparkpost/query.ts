import * as z from "zod";
import { getAccountPlan } from "../../accounts/plans";
import type { Env } from "../../env";
import { windowTotal } from "../../events/hour-reads";
import { type CursorPosition, clampWindow, type Window } from "../../events/query";
import { toPublicEvent } from "../../events/serialize";
import { ApiError, validationError } from "../../lib/errors";
import { hashId } from "../../lib/ids";
import { openCursor, sealCursor } from "../../lib/keyset-cursor";
import { log } from "../../lib/log";
import {
  accountIdParam,
  COMMA_LIST,
  DAY_MS,
  integerParam,
  MAX_LIST_VALUES,
  splitList,
  timestampParam,
} from "../../lib/params";
import { totalKey, totalOnce } from "../../lib/totals";
import { parseQuery } from "../../lib/validate";
import { streamAcross } from "../../shards/across";
import { accountShards } from "../../shards/route";
import {
  countMatches,
  PAGE_ROW_BUDGET,
  pageBudgetAfterCount,
  type ScanEnd as ScanResult,
  type ScanRow,
  scan,
} from "../../store";
import { BOUNCE_CLASS_SQL, BOUNCE_CLASSES, isBounceClass } from "./bounce-class";
import { KNOWN_SPARKPOST_TYPES, type SparkPostType, toSparkPostEvent } from "./event-map";
import {
  ABSENT_FILTERS,
  compileFilters,
  KEYWORD_FILTERS,
  type KeywordFilter,
  keywordsOf,
  type SparkPostFilters,
  totalByRollups,
} from "./filters";

/** GET /compat/sparkpost/api/v1/events/message: parameters, cursor and the streamed page (SPEC §16). */

export const SPARKPOST_PREFIX = "/compat/sparkpost";
export const MESSAGE_EVENTS_PATH = `${SPARKPOST_PREFIX}/api/v1/events/message`;
export const DEFAULT_PER_PAGE = 1000;
export const MAX_PER_PAGE = 10_000;

/** The list filters; their values are split at `delimiter`. */
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
const IS_LIST: ReadonlySet<string> = new Set(LIST_FILTERS);

/** A keyword filter takes at most this many keywords, the words of all its values together (SPEC §18). */
export const MAX_KEYWORDS = 10;

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const TEXT = /^[^\u0000-\u001f\u007f]+$/;
const text = z
  .string()
  .max(1024, "values must be at most 1024 characters")
  .regex(TEXT, "values must not be empty or hold control characters");

const list = <T extends z.ZodType>(item: T, description: string) =>
  z
    .array(item)
    .min(1, "must hold at least one value")
    .max(MAX_LIST_VALUES, `takes at most ${MAX_LIST_VALUES} values`)
    .optional()
    .meta({ ...COMMA_LIST, description: `${description}; split at \`delimiter\`` });

/** A keyword filter: values with at least one word, at most MAX_KEYWORDS words in all. */
const keywordList = (name: KeywordFilter, description: string) => {
  const { periods } = KEYWORD_FILTERS[name];
  // A value holds a word: a character that is neither a control character nor a separator.
  const word = periods ? "[^\\u0000-\\u001f\\u007f \\-_.]" : "[^\\u0000-\\u001f\\u007f \\-_]";
  const item = text.regex(
    new RegExp(`^[^\\u0000-\\u001f\\u007f]*${word}[^\\u0000-\\u001f\\u007f]*$`),
    "values must hold a keyword",
  );
  return list(
    item,
    `${description}; keyword search (see the description), at most ${MAX_KEYWORDS} keywords in all`,
  ).refine(
    (values) => (values ?? []).reduce((n, v) => n + keywordsOf(v, periods).length, 0) <= MAX_KEYWORDS,
    `takes at most ${MAX_KEYWORDS} keywords in all (the words of all its values)`,
  );
};

const BOUNCE_CLASS_CODES = Object.keys(BOUNCE_CLASSES).map(Number);

/**
 * GET …/events/message's query: it validates the request and is what /openapi.json shows. The lists
 * are split at the request's own `delimiter` first (a rule between fields, in the description).
 */
const sparkPostParams = z.object({
  from: timestampParam.optional().meta({ description: "inclusive; default 24 hours ago" }),
  to: timestampParam.optional().meta({ description: "exclusive; default now" }),
  cursor: z
    .string()
    .min(1, "must be initial or the cursor of a links.next")
    .max(1024, "must be initial or the cursor of a links.next")
    .optional()
    .meta({ description: "initial (default) or the cursor of links.next" }),
  per_page: integerParam(1, MAX_PER_PAGE)
    .default(DEFAULT_PER_PAGE)
    .meta({ description: "1-10000, default 1000" }),
  delimiter: z
    .string()
    .refine((v) => [...v].length === 1, "must be one character")
    .default(",")
    .meta({ minLength: 1, maxLength: 1, description: "the lists' delimiter, one character; default ," }),
  events: list(
    z.enum(KNOWN_SPARKPOST_TYPES as [string, ...string[]], {
      error: (issue) => `must be SparkPost message event types (not ${String(issue.input)})`,
    }),
    "event types",
  ),
  event_ids: list(text, "event ids"),
  recipients: list(text, "recipient addresses"),
  recipient_domains: keywordList("recipient_domains", "recipient domains, by domain segment"),
  from_addresses: list(text, "friendly from addresses"),
  sending_domains: keywordList("sending_domains", "sending domains, by domain segment"),
  subjects: keywordList("subjects", "subject lines"),
  bounce_classes: list(
    z
      .preprocess(
        (v) => (typeof v === "string" && /^\d{1,3}$/.test(v) ? Number(v) : v),
        z
          .number({ error: "must be bounce classification codes" })
          .refine((n) => isBounceClass(n), "must be bounce classification codes"),
      )
      .meta({ type: "integer", enum: BOUNCE_CLASS_CODES }),
    "bounce classification codes",
  ),
  reasons: keywordList("reasons", "bounce/failure/rejection reasons"),
  campaigns: keywordList("campaigns", "campaign ids"),
  templates: keywordList("templates", "template ids"),
  messages: list(text, "message ids"),
  message_ids: list(text, "message ids (same as messages)"),
  transmissions: list(text, "transmission ids (mailtrail email_id)"),
  transmission_ids: list(text, "transmission ids (same as transmissions)"),
  sending_ips: list(text, "accepted; matches nothing"),
  ip_pools: list(text, "accepted; matches nothing"),
  subaccounts: list(text, "accepted; matches nothing"),
  mailbox_providers: list(text, "accepted; matches nothing"),
  mailbox_provider_regions: list(text, "accepted; matches nothing"),
  ab_tests: list(text, "accepted; matches nothing"),
  ab_test_versions: list(text, "accepted with ab_tests (required with it); matches nothing"),
  account_id: accountIdParam,
});
export const sparkPostQuerySchema = z.preprocess((raw) => {
  if (typeof raw !== "object" || raw === null) return raw;
  const given = raw as Record<string, unknown>;
  const d = given.delimiter;
  const delimiter = typeof d === "string" && [...d].length === 1 ? d : ",";
  return Object.fromEntries(
    Object.entries(given).map(([name, value]) => [
      name,
      IS_LIST.has(name) ? splitList(value, delimiter) : value,
    ]),
  );
}, sparkPostParams);
export type SparkPostQueryParams = z.output<typeof sparkPostQuerySchema>;

/**
 * The schema as a route's `query`: zod-to-openapi's types take objects only, while it documents a
 * preprocessed object as the object (and route() parses the whole pipe). Same output type.
 */
export const sparkPostQueryRequest = sparkPostQuerySchema as unknown as typeof sparkPostParams;

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

/**
 * The parsed query in the shape the search runs on, after the rules between fields. `params`, the
 * query as given, is only repeated in links.next.
 */
export function toSparkPostQuery(q: SparkPostQueryParams, params: URLSearchParams): SparkPostQuery {
  if (q.ab_test_versions !== undefined && q.ab_tests === undefined)
    throw validationError("ab_tests", "ab_tests is required with ab_test_versions");
  if (q.from !== undefined && q.to !== undefined && q.from >= q.to)
    throw validationError("from", "from must be before to");
  const merge = (a: string[] | undefined, b: string[] | undefined) =>
    a === undefined && b === undefined ? null : [...new Set([...(a ?? []), ...(b ?? [])])];
  const keywords: SparkPostFilters["keywords"] = {};
  for (const name of Object.keys(KEYWORD_FILTERS) as KeywordFilter[]) {
    const values = q[name];
    if (values !== undefined) keywords[name] = values;
  }
  return {
    from: q.from ?? null,
    to: q.to ?? null,
    cursor: q.cursor === undefined || q.cursor === "initial" ? null : q.cursor,
    perPage: q.per_page,
    filters: {
      events: (q.events as SparkPostType[] | undefined) ?? null,
      eventIds: q.event_ids ?? null,
      recipients: q.recipients?.map((r) => r.toLowerCase()) ?? null,
      fromAddresses: q.from_addresses?.map((r) => r.toLowerCase()) ?? null,
      bounceClasses: q.bounce_classes ?? null,
      messageIds: merge(q.messages, q.message_ids),
      transmissionIds: merge(q.transmissions, q.transmission_ids),
      keywords,
      impossible: ABSENT_FILTERS.find((name) => q[name] !== undefined) ?? null,
    },
    accountId: q.account_id ?? null,
    repeat: [...params].filter(([name]) => name !== "cursor" && name !== "per_page"),
  };
}

/** The query of a request URL, through the route's own schema (tests and the benchmark). */
export const sparkPostQueryFrom = (params: URLSearchParams) =>
  toSparkPostQuery(parseQuery(sparkPostQuerySchema, params), params);

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
  // Every shard holding the account's events (stripes, a previous placement): counts add up, pages merge.
  const shards = [...(await accountShards(env, accountId)).read];
  if (state === null) {
    // Once per chain (later pages carry it), and an initial page at most once a minute per account
    // and query (SPEC §18); on every shard holding the account's events, summed (SPEC §17).
    // By the rollups when only `events` and keywords on rollup dimensions filter (events/hour-reads.ts).
    totalCount = await totalOnce(totalKey(accountId, "sparkpost/events", [["f", fingerprint]]), async () => {
      const counted = await windowTotal(
        env,
        shards,
        accountId,
        window,
        totalByRollups(query.filters),
        (db, range) => countMatches(db, accountId, range, compiled.countAccess, match),
      );
      countRowsRead = counted.rowsRead;
      return counted.total;
    });
  }
  // The count's rows come out of the page's budget (SPEC §18: the request's rows per shard; store/scan.ts
  // pageBudgetAfterCount).
  const pageBudget = pageBudgetAfterCount(budget, countRowsRead);
  const walk = streamAcross(env, shards, query.perPage, (db) =>
    scan(db, {
      accountId,
      window,
      path: compiled.access,
      match,
      columns: `${BOUNCE_CLASS_SQL} AS _bounce_class`,
      from: state?.position ?? null,
      limit: query.perPage,
      budget: pageBudget,
    }),
  );
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
