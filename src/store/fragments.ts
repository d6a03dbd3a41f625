import {
  columnOf,
  DIMENSIONS,
  type Dimension,
  EVENT_FIELD_NAMES,
  EVENT_FIELDS,
  type EventField,
  type EventRecord,
  ID_DEDUPED_SQL,
  isList,
} from "../db/event-record";
import type { EventDbRow } from "../events/serialize";

/**
 * SQL fragments derived from the event's one declaration (db/event-record.ts), shared by every
 * statement of the store: the consumer's writes, the rollups and the readers compose their SQL from
 * these instead of spelling columns and rules again.
 */

/** One field of a JSON row travelling as a bound parameter (`json_each(?)`): `json_extract(value, '$.f')`. */
export const jsonField = (field: string, source = "value") => `json_extract(${source}, '$.${field}')`;

export const col = columnOf;

/** The events table's columns: account_id, then every field in SPEC §8 order. */
export const EVENT_COLUMNS = ["account_id", ...EVENT_FIELD_NAMES.map(col)];

/** `json_extract(value, '$.field') AS column` for every event field: a JSON row as an events row. */
export const EVENT_JSON_SELECT = ["account_id", ...EVENT_FIELD_NAMES]
  .map((k, i) => `${jsonField(k)} AS ${EVENT_COLUMNS[i]}`)
  .join(", ");

export const isDimension = (k: EventField): k is Dimension => (DIMENSIONS as EventField[]).includes(k);

/** A dimension's value: `fresh`, or `fallback` where fresh is empty (NULL; '[]' for a list). */
export const fill = (k: Dimension, fresh: string, fallback: string) =>
  isList(k)
    ? `CASE WHEN ${fresh} = '[]' AND ${fallback} IS NOT NULL THEN ${fallback} ELSE ${fresh} END`
    : `COALESCE(${fresh}, ${fallback})`;

/** Whether `registered` would fill a gap in `have`. */
export const gap = (k: Dimension, have: string, registered: string) =>
  isList(k)
    ? `(${have} = '[]' AND ${registered} <> '[]')`
    : `(${have} IS NULL AND ${registered} IS NOT NULL)`;

/**
 * Enrichment (SPEC §6): the columns of events row `e` with each dimension filled from the
 * registration `m` (a `messages` row joined on account and email), in EVENT_FIELD_NAMES order.
 */
export const enrichedFields = (e: string, m: string, fields: readonly EventField[] = EVENT_FIELD_NAMES) =>
  fields.map((k) => (isDimension(k) ? fill(k, `${e}.${col(k)}`, `${m}.${col(k)}`) : `${e}.${col(k)}`));

/** The registration of events row `e`, for a LEFT JOIN (enrichment). */
export const registrationOf = (e: string, m = "m") =>
  `messages AS ${m} ON ${m}.account_id = ${e}.account_id AND ${m}.email_id = ${e}.email_id`;

/** A stored event of `e`'s email with `e`'s id (the id-deduplicated types' repeat test, on the email index). */
export const storedWithIdOf = (e: string) =>
  `EXISTS (SELECT 1 FROM events AS x INDEXED BY events_email_idx
                   WHERE x.account_id = ${e}.account_id AND x.email_id = ${e}.email_id AND x.id = ${e}.id)`;

/**
 * First arrival of event row `e` beside ON CONFLICT on the primary key: the types that take their
 * time from the request (a suppression check, a tracking hit) share only their deterministic id with
 * a repeat, so a stored event with that id on the email index makes them a repeat too (SPEC §5).
 */
export const firstArrivalById = (e: string) =>
  `(${e}.type NOT IN (${ID_DEDUPED_SQL}) OR NOT ${storedWithIdOf(e)})`;

/** First arrival of event row `e` when nothing else drops repeats: neither its key nor (per type) its id is stored. */
export const firstArrival = (e: string) =>
  `NOT EXISTS (SELECT 1 FROM events AS x
                     WHERE x.account_id = ${e}.account_id AND x.occurred_at = ${e}.occurred_at AND x.id = ${e}.id)
    AND ${firstArrivalById(e)}`;

/** Rows named by primary key in a JSON array of `[account_id, occurred_at, id]`, joined to events (one seek each). */
export const eventsByKeyJoin = (k = "k", e = "e") =>
  `json_each(?1) AS ${k} JOIN events AS ${e}
         ON ${e}.account_id = ${k}.value->>0 AND ${e}.occurred_at = ${k}.value->>1 AND ${e}.id = ${k}.value->>2`;

/** A stored row back as the queue record it was written from (SPEC §8 names, occurred_at in epoch ms). */
export function recordOfRow(row: EventDbRow): EventRecord {
  const stored = row as unknown as Record<string, unknown>;
  const record: Record<string, unknown> = { account_id: row.account_id };
  for (const k of EVENT_FIELD_NAMES) {
    const v = stored[col(k)];
    record[k] = EVENT_FIELDS[k].storage === "json" && typeof v === "string" ? JSON.parse(v) : v;
  }
  return record as EventRecord;
}
