import * as z from "zod";
import {
  type ColumnOf,
  columnOf,
  EVENT_FIELD_NAMES,
  EVENT_FIELDS,
  type EventField,
  type EventRecord,
} from "../db/event-record";

/**
 * The event's stored and public shapes, derived from its one declaration (db/event-record.ts):
 * the row as D1 returns it, the public object of SPEC §8, and that object's OpenAPI schema.
 */

type Fields = typeof EVENT_FIELDS;
type StoredValue<K extends EventField> = Fields[K]["storage"] extends "json"
  ? null extends EventRecord[K]
    ? string | null
    : string
  : EventRecord[K];

/** A row of `events` as D1 returns it (snake_case columns). */
export type EventDbRow = { account_id: string } & { [K in EventField as ColumnOf<K>]: StoredValue<K> };

const PUBLIC_NAMES = EVENT_FIELD_NAMES;

/** The public event object of SPEC §8: every field present, `null` where it does not apply. */
export const eventSchema = z
  .object({
    id: EVENT_FIELDS.id.schema,
    object: z.literal("event"),
    ...(Object.fromEntries(
      PUBLIC_NAMES.filter((k) => k !== "id").map((k) => [
        k,
        EVENT_FIELDS[k].storage === "epoch_ms" ? z.iso.datetime() : EVENT_FIELDS[k].schema,
      ]),
    ) as {
      [K in Exclude<EventField, "id">]: Fields[K]["storage"] extends "epoch_ms"
        ? z.ZodISODateTime
        : Fields[K]["schema"];
    }),
  })
  .meta({ id: "Event" });
export type PublicEvent = z.infer<typeof eventSchema>;

const DECODERS = PUBLIC_NAMES.map((k) => {
  const column = columnOf(k);
  const storage = EVENT_FIELDS[k].storage;
  const decode =
    storage === "json"
      ? (v: unknown) => (v === null ? null : JSON.parse(v as string))
      : storage === "epoch_ms"
        ? (v: unknown) => new Date(v as number).toISOString()
        : (v: unknown) => v;
  return [k, column, decode] as const;
});

export function toPublicEvent(row: EventDbRow): PublicEvent {
  const stored = row as unknown as Record<string, unknown>;
  const event: Record<string, unknown> = { id: row.id, object: "event" };
  for (const [name, column, decode] of DECODERS) event[name] = decode(stored[column]);
  return event as PublicEvent;
}

/** The stored form of a queue record's fields, keyed by field name (the consumer maps them to columns). */
export function toStoredFields(record: EventRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { account_id: record.account_id };
  for (const name of EVENT_FIELD_NAMES) {
    const value = record[name];
    out[name] = EVENT_FIELDS[name].storage === "json" && value !== null ? JSON.stringify(value) : value;
  }
  return out;
}
