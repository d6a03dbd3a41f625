import type { TotalByRollups } from "../../events/hour-reads";
import { EVENT_TYPES, type EventType } from "../../events/record";
import { type AccessPath, sqlLiteral } from "../../store";
import { BOUNCE_CLASS_SQL } from "./bounce-class";
import { SPARKPOST_TYPES, type SparkPostType } from "./event-map";

/**
 * SparkPost's list filters (SPEC §16) → one SQL boolean over an events row. Values are OR'd within a
 * filter, filters AND'd. Values are SQL literals (see sqlLiteral).
 *
 * Keyword search: a field's words are its value split at spaces, dashes and underscores (and periods
 * for the two domain filters), compared case-insensitively; a filter value matches when each of its
 * own words is one of the field's words. In SQL: the field lowercased, separators turned into
 * spaces, padded with spaces, and each word looked up as ` word `. SQLite's lower() folds ASCII
 * letters only, so the words are folded the same way here: other letters compare exactly.
 */

export const KEYWORD_FILTERS = {
  recipient_domains: { column: "substr(recipient, instr(recipient, '@') + 1)", periods: true },
  sending_domains: { column: "from_domain", periods: true },
  subjects: { column: "subject", periods: false },
  reasons: { column: "smtp_response", periods: false },
  campaigns: { column: "campaign", periods: false },
  templates: { column: "template_id", periods: false },
} as const;
export type KeywordFilter = keyof typeof KEYWORD_FILTERS;

/** SparkPost filters for things mailtrail does not have: accepted, and no event matches them. */
export const ABSENT_FILTERS = [
  "sending_ips",
  "ip_pools",
  "subaccounts",
  "mailbox_providers",
  "mailbox_provider_regions",
  "ab_tests",
  "ab_test_versions",
] as const;

export interface SparkPostFilters {
  events: SparkPostType[] | null;
  eventIds: string[] | null;
  recipients: string[] | null;
  fromAddresses: string[] | null;
  bounceClasses: number[] | null;
  messageIds: string[] | null;
  transmissionIds: string[] | null;
  keywords: Partial<Record<KeywordFilter, string[]>>;
  /** An absent-field filter was given: nothing matches. */
  impossible: string | null;
}

/** ASCII-only lowercase, as SQLite's lower(). */
export const foldAscii = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** A value's keywords, as the SQL side splits a field. */
export function keywordsOf(value: string, periods: boolean): string[] {
  return foldAscii(value)
    .split(periods ? /[ \-_.]+/ : /[ \-_]+/)
    .filter(Boolean);
}

/** The reference implementation of keyword matching (tests hold the SQL to it). */
export function keywordMatches(field: string | null, value: string, periods: boolean): boolean {
  if (field === null) return false;
  const words = new Set(keywordsOf(field, periods));
  const wanted = keywordsOf(value, periods);
  return wanted.length > 0 && wanted.every((w) => words.has(w));
}

function normalizedSql(column: string, periods: boolean): string {
  let expr = `replace(replace(lower(COALESCE(${column}, '')), '-', ' '), '_', ' ')`;
  if (periods) expr = `replace(${expr}, '.', ' ')`;
  return `(' ' || ${expr} || ' ')`;
}

/** The mailtrail types of SparkPost `events` (policy_rejection is two of them; a type mailtrail lacks, none). */
export const typesOf = (events: readonly SparkPostType[]): EventType[] =>
  Object.entries(SPARKPOST_TYPES)
    .filter(([, sp]) => events.includes(sp))
    .map(([type]) => type as EventType);

/**
 * An SQL string literal. Filter values are written into the statement as literals rather than bound:
 * D1 counts every row a json_each() yields as a row read, per row scanned when the list is probed
 * from a row's expression, which would double a page's reads; bound parameters are capped at 100
 * per statement. Quotes are doubled (SQLite's only escape); values with control characters never
 * get here (the parser refuses them).
 */

/** A keyword filter's values over `column` (the field's events column, or a rollup's): some value all of whose words are the field's. */
function keywordSql(name: KeywordFilter, values: readonly string[], column: string): string {
  const { periods } = KEYWORD_FILTERS[name];
  const field = normalizedSql(column, periods);
  const anyValue = values.map(
    (v) =>
      `(${keywordsOf(v, periods)
        .map((w) => `instr(${field}, ${sqlLiteral(` ${w} `)}) > 0`)
        .join(" AND ")})`,
  );
  return `(${anyValue.join(" OR ")})`;
}

/** The filters as an SQL predicate, and the access path the scan should use. */
export function compileFilters(filters: SparkPostFilters): {
  sql: string | null;
  params: (string | number)[];
  access: AccessPath;
  /** total_count's path: several transmissions or recipients are seeks, each bounded by its events. */
  countAccess: AccessPath;
} {
  if (filters.impossible !== null)
    return { sql: "0", params: [], access: { kind: "time" }, countAccess: { kind: "time" } };
  const where: string[] = [];
  // `CASE x WHEN … THEN 1` rather than `x IN (…)`: SQLite answers an IN list of three or more by
  // probing an ephemeral table, and D1 counts each probe as a row read (a count doubled its reads).
  const oneOf = (expr: string, literals: string[]) =>
    literals.length === 0
      ? "0"
      : `(CASE ${expr} ${literals.map((l) => `WHEN ${l} THEN 1`).join(" ")} ELSE 0 END)`;
  const inList = (expr: string, values: readonly string[] | null) => {
    if (values !== null) where.push(oneOf(expr, values.map(sqlLiteral)));
  };
  if (filters.events !== null) inList("type", typesOf(filters.events));
  inList("id", filters.eventIds);
  inList("recipient", filters.recipients);
  inList("lower(from_address)", filters.fromAddresses);
  if (filters.bounceClasses !== null)
    where.push(
      `${BOUNCE_CLASS_SQL} IN (${filters.bounceClasses.map((n) => String(Math.trunc(n))).join(", ")})`,
    );
  inList("message_id", filters.messageIds);
  inList("email_id", filters.transmissionIds);
  for (const [name, values] of Object.entries(filters.keywords) as [KeywordFilter, string[]][])
    where.push(keywordSql(name, values, KEYWORD_FILTERS[name].column));
  let access: AccessPath = { kind: "time" };
  const [onlyEmail] = filters.transmissionIds ?? [];
  const [onlyRecipient] = filters.recipients ?? [];
  if (filters.transmissionIds?.length === 1 && onlyEmail !== undefined)
    access = { kind: "email_id", value: onlyEmail };
  else if (filters.recipients?.length === 1 && onlyRecipient !== undefined)
    access = { kind: "recipient", value: onlyRecipient };
  // The page walks the window by time (bounded by the page's budget); its total counts only the
  // asked transmissions' or recipients' events through their index, not the window (SPEC §18).
  let countAccess: AccessPath = access;
  if (access.kind === "time" && filters.transmissionIds && filters.transmissionIds.length > 1)
    countAccess = { kind: "email_ids", values: filters.transmissionIds };
  else if (access.kind === "time" && filters.recipients && filters.recipients.length > 1)
    countAccess = { kind: "recipients", values: filters.recipients };
  return { sql: where.length > 0 ? where.join(" AND ") : null, params: [], access, countAccess };
}

/** The keyword filters whose field the metrics rollups hold, and its rollup column. */
const ROLLUP_KEYWORDS: Partial<Record<KeywordFilter, string>> = {
  campaigns: "campaign",
  templates: "template_id",
  sending_domains: "from_domain",
};

/**
 * total_count's filters as the rollups hold them (events/hour-reads.ts): the asked types (every type
 * without `events`) and, for keywords on campaigns, templates and sending domains, their match over
 * a rollup row's column. Null when another filter narrows the search: its events are counted.
 */
export function totalByRollups(filters: SparkPostFilters): TotalByRollups | null {
  const { events, keywords, ...others } = filters;
  if (Object.values(others).some((v) => v !== null)) return null;
  const where: string[] = [];
  for (const [name, values] of Object.entries(keywords) as [KeywordFilter, string[]][]) {
    const column = ROLLUP_KEYWORDS[name];
    if (column === undefined) return null;
    where.push(keywordSql(name, values, column));
  }
  return {
    types: events === null ? EVENT_TYPES : typesOf(events),
    where: where.length > 0 ? where.join(" AND ") : null,
  };
}
