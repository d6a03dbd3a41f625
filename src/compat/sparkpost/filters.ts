import type { EventType } from "../../events/record";
import type { AccessPath, ScanFilter } from "../scan";
import { BOUNCE_CLASS_SQL } from "./bounce-class";
import { SPARKPOST_TYPES, type SparkPostType } from "./event-map";

/**
 * SparkPost's list filters (SPEC §16) → one SQL boolean over an events row. Values are OR'd within a
 * filter, filters AND'd. Every list is bound as ONE JSON array parameter and unpacked with json_each,
 * so any number of values stays within D1's bound-parameter limit.
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

const typesOf = (events: SparkPostType[]): EventType[] =>
  Object.entries(SPARKPOST_TYPES)
    .filter(([, sp]) => events.includes(sp))
    .map(([type]) => type as EventType);

/** The filters as an SQL predicate with its parameters, and the access path the scan should use. */
export function compileFilters(filters: SparkPostFilters): Pick<ScanFilter, "sql" | "params" | "access"> {
  if (filters.impossible !== null) return { sql: "0", params: [], access: { kind: "time" } };
  const where: string[] = [];
  const params: (string | number)[] = [];
  const inList = (expr: string, values: readonly (string | number)[] | null) => {
    if (values === null) return;
    where.push(`${expr} IN (SELECT value FROM json_each(?))`);
    params.push(JSON.stringify(values));
  };
  if (filters.events !== null) inList("type", typesOf(filters.events));
  inList("id", filters.eventIds);
  inList("recipient", filters.recipients);
  inList("lower(from_address)", filters.fromAddresses);
  inList(BOUNCE_CLASS_SQL, filters.bounceClasses);
  inList("message_id", filters.messageIds);
  inList("email_id", filters.transmissionIds);
  for (const [name, values] of Object.entries(filters.keywords) as [KeywordFilter, string[]][]) {
    const { column, periods } = KEYWORD_FILTERS[name];
    // Some value (v) all of whose words (w) are among the field's.
    where.push(
      `EXISTS (SELECT 1 FROM json_each(?) AS v WHERE NOT EXISTS (SELECT 1 FROM json_each(v.value) AS w ` +
        `WHERE instr(${normalizedSql(column, periods)}, ' ' || w.value || ' ') = 0))`,
    );
    params.push(JSON.stringify(values.map((v) => keywordsOf(v, periods))));
  }
  let access: AccessPath = { kind: "time" };
  const [onlyEmail] = filters.transmissionIds ?? [];
  const [onlyRecipient] = filters.recipients ?? [];
  if (filters.transmissionIds?.length === 1 && onlyEmail !== undefined)
    access = { kind: "email_id", value: onlyEmail };
  else if (filters.recipients?.length === 1 && onlyRecipient !== undefined)
    access = { kind: "recipient", value: onlyRecipient };
  return { sql: where.length > 0 ? where.join(" AND ") : null, params, access };
}
