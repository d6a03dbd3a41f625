import {
  integer,
  type SQLiteIntegerBuilderInitial,
  type SQLiteTextBuilderInitial,
  text,
} from "drizzle-orm/sqlite-core";
import * as z from "zod";

/**
 * The event, declared once. EVENT_FIELDS is the root of every shape an event takes:
 * - the queue record (`eventRecordSchema`, below), which the consumer validates and writes;
 * - the `events` table (db/events.ts) and the consumer's column lists (queue/consumer.ts);
 * - the row as D1 returns it and the public object of SPEC §8 with its OpenAPI schema
 *   (events/serialize.ts);
 * - the blank event producers start from (`blankEvent`);
 * - the correlation dimensions of SPEC §6 (`dimension`), which registration validates, the
 *   `messages` table stores and the consumer's enrichment SQL copies onto events.
 * Adding a field means one line here, `npm run db:generate`, and the code that gives it a value.
 *
 * The root is a zod schema rather than the Drizzle table because zod says more: lengths, enums and
 * the `tracking` object are validated on every queue message and shown in the OpenAPI document,
 * while the table only needs each column's name, type and nullability, which are read off the zod
 * types here. The order of the fields is the order of SPEC §8 (and of the table's columns after
 * its key).
 */

/** Event types of SPEC §8. */
export const EVENT_TYPES = [
  "email.sent",
  "email.delivered",
  "email.delayed",
  "email.bounced",
  "email.complained",
  "email.suppressed",
  "email.unsubscribed",
  "email.opened",
  "email.clicked",
  "email.failed",
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof eventTypeSchema>;

/**
 * Types whose time is the request's (a suppression check, a tracking hit), so a repeat shares only
 * its deterministic id with the first (a replayed token within its bucket, SPEC §5): the consumer
 * finds repeats by id on the email index. The events INSERT and the metrics rollups use this one list.
 */
export const ID_DEDUPED_TYPES = [
  "email.suppressed",
  "email.opened",
  "email.clicked",
  "email.unsubscribed",
] as const;
/** ID_DEDUPED_TYPES as an SQL list: `'email.suppressed', …`. */
export const ID_DEDUPED_SQL = ID_DEDUPED_TYPES.map((t) => `'${t}'`).join(", ");

/** Tag and topic syntax of SPEC §6. */
export const TAG_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const TOPIC_PATTERN = /^[a-z0-9_.-]{1,64}$/;
export const tagSchema = z.string().regex(TAG_PATTERN, "a tag is 1-64 characters of [A-Za-z0-9_-]");
export const topicSchema = z.string().regex(TOPIC_PATTERN, "a topic is 1-64 characters of [a-z0-9_.-]");
export const MAX_TAGS = 10;

export const botSchema = z.object({ kind: z.literal("proxy"), source: z.string() });
export type Bot = z.infer<typeof botSchema>;

export const geoSchema = z.object({
  country: z.string().nullable(),
  region: z.string().nullable(),
  city: z.string().nullable(),
});
export type Geo = z.infer<typeof geoSchema>;

/** `tracking` of SPEC §5, on opens and clicks only. */
export const trackingSchema = z.object({
  user_agent: z.string().nullable(),
  ip_address: z.string().nullable(),
  url: z.string().nullable(),
  link_name: z.string().nullable(),
  geo: geoSchema.nullable(),
  bot: botSchema.nullable(),
});
export type Tracking = z.infer<typeof trackingSchema>;

/**
 * How a field is stored: `text` and `integer` as they are, `json` as JSON text (a list is `'[]'`
 * when empty, never NULL), `epoch_ms` as an integer of milliseconds that §8 shows as ISO 8601.
 */
type Storage = "text" | "integer" | "json" | "epoch_ms";

interface FieldSpec {
  /** The value as the queue carries it (and §8 shows it, but for `epoch_ms`). */
  schema: z.ZodType;
  storage: Storage;
  /** The D1 column, where it differs from the field's name (`from` is an SQL keyword). */
  column?: string;
  /**
   * A correlation dimension (SPEC §6): registration supplies it and the consumer copies it onto
   * every event of the message that lacks it. `register` is what a platform may send for it;
   * without one it is derived from another dimension (from_domain from from).
   */
  dimension?: { register?: z.ZodType };
}

const field = <const F extends FieldSpec>(spec: F) => spec;

export const EVENT_FIELDS = {
  id: field({ schema: z.string().regex(/^evt_[0-9a-z]{8,64}$/), storage: "text" }),
  type: field({ schema: eventTypeSchema, storage: "text" }),
  occurred_at: field({ schema: z.number().int().nonnegative(), storage: "epoch_ms" }),
  email_id: field({ schema: z.string().min(1).max(256), storage: "text" }),
  message_id: field({
    schema: z.string().max(998).nullable(),
    storage: "text",
    dimension: { register: z.string().min(1).max(998) },
  }),
  from: field({
    schema: z.string().max(320).nullable(),
    storage: "text",
    column: "from_address",
    // The From header as the platform has it; registration keeps its bare address.
    dimension: { register: z.string().min(3).max(320) },
  }),
  from_domain: field({ schema: z.string().max(255).nullable(), storage: "text", dimension: {} }),
  recipient: field({ schema: z.string().min(1).max(320), storage: "text" }),
  subject: field({
    schema: z.string().max(2000).nullable(),
    storage: "text",
    dimension: { register: z.string().max(2000) },
  }),
  topic: field({ schema: z.string().nullable(), storage: "text", dimension: { register: topicSchema } }),
  campaign: field({
    schema: z.string().max(256).nullable(),
    storage: "text",
    dimension: { register: z.string().min(1).max(256) },
  }),
  template_id: field({
    schema: z.string().max(256).nullable(),
    storage: "text",
    dimension: { register: z.string().min(1).max(256) },
  }),
  tags: field({
    schema: z.array(z.string()).max(MAX_TAGS),
    storage: "json",
    dimension: { register: z.array(tagSchema).max(MAX_TAGS) },
  }),
  smtp_code: field({ schema: z.number().int().nullable(), storage: "integer" }),
  smtp_response: field({ schema: z.string().max(4000).nullable(), storage: "text" }),
  bounce_type: field({
    schema: z.enum(["permanent", "transient", "undetermined"]).nullable(),
    storage: "text",
  }),
  bounce_classification: field({ schema: z.string().max(128).nullable(), storage: "text" }),
  complaint_type: field({ schema: z.string().max(128).nullable(), storage: "text" }),
  attempt: field({ schema: z.number().int().nullable(), storage: "integer" }),
  tracking: field({ schema: trackingSchema.nullable(), storage: "json" }),
} as const satisfies Record<string, FieldSpec>;

type Fields = typeof EVENT_FIELDS;
export type EventField = keyof Fields;
export const EVENT_FIELD_NAMES = Object.keys(EVENT_FIELDS) as EventField[];

/** The D1 column of a field. */
export type ColumnOf<K extends EventField> = Fields[K] extends { column: infer C extends string } ? C : K;
export const columnOf = <K extends EventField>(name: K): ColumnOf<K> =>
  ((EVENT_FIELDS[name] as FieldSpec).column ?? name) as ColumnOf<K>;

const accepts = (schema: z.ZodType, value: unknown) => schema.safeParse(value).success;
export const isNullable = (name: EventField) => accepts(EVENT_FIELDS[name].schema, null);
/** A list field (`tags`): empty is `[]`, stored as `'[]'`. */
export const isList = (name: EventField) => accepts(EVENT_FIELDS[name].schema, []);

/**
 * One event as the queue carries it and the consumer writes it: the fields above plus the owning
 * account. Correlation dimensions the producer does not know are null (`[]` for tags); the
 * consumer fills them from the message's registration when there is one.
 */
export const eventRecordSchema = z.object({
  account_id: z.string().min(1).max(64),
  ...(Object.fromEntries(EVENT_FIELD_NAMES.map((k) => [k, EVENT_FIELDS[k].schema])) as {
    [K in EventField]: Fields[K]["schema"];
  }),
});
export type EventRecord = z.infer<typeof eventRecordSchema>;

/** What every producer knows; every other field starts empty. */
export type EventBase = Pick<
  EventRecord,
  "id" | "account_id" | "type" | "occurred_at" | "email_id" | "recipient"
>;

const NULLS = EVENT_FIELD_NAMES.filter((k) => isNullable(k));
const LISTS = EVENT_FIELD_NAMES.filter((k) => isList(k));

/** A record with every optional field empty (null; `[]` for lists): producers spread their known fields over it. */
export function blankEvent(base: EventBase): EventRecord {
  const blank: Record<string, unknown> = {};
  for (const k of NULLS) blank[k] = null;
  for (const k of LISTS) blank[k] = [];
  return { ...(blank as Omit<EventRecord, keyof EventBase>), ...base };
}

// ---------------------------------------------------------------------------------------------
// Correlation dimensions (SPEC §6)

export type Dimension = {
  [K in EventField]: Fields[K] extends { dimension: object } ? K : never;
}[EventField];
export const DIMENSIONS = EVENT_FIELD_NAMES.filter(
  (k): k is Dimension => (EVENT_FIELDS[k] as FieldSpec).dimension !== undefined,
);
export type RegisteredDimension = {
  [K in Dimension]: Fields[K]["dimension"] extends { register: z.ZodType } ? K : never;
}[Dimension];

type Registered<K extends Dimension> = Fields[K]["dimension"] extends { register: infer R extends z.ZodType }
  ? R
  : Fields[K]["schema"];

/**
 * The registered dimensions of one message as the queue carries them (SPEC §6): each with the syntax
 * it was registered with (topics and tags keep theirs), null when not given (`[]` for tags).
 */
export const registrationSchema = z.object({
  email_id: EVENT_FIELDS.email_id.schema,
  ...(Object.fromEntries(
    DIMENSIONS.map((k) => {
      const stored = (EVENT_FIELDS[k] as FieldSpec).dimension?.register ?? EVENT_FIELDS[k].schema;
      return [k, isList(k) ? stored : stored.nullable()];
    }),
  ) as { [K in Dimension]: K extends "tags" ? Registered<K> : z.ZodNullable<Registered<K>> }),
});
export type Registration = z.infer<typeof registrationSchema>;

/** What a platform may register for one message: each registrable dimension, optional. */
export const registrationInputShape = Object.fromEntries(
  DIMENSIONS.flatMap((k) => {
    const register = (EVENT_FIELDS[k] as FieldSpec).dimension?.register;
    return register ? [[k, register.optional()]] : [];
  }),
) as { [K in RegisteredDimension]: z.ZodOptional<Fields[K]["dimension"]["register"]> };

// ---------------------------------------------------------------------------------------------
// Columns, for the Drizzle tables (db/events.ts, db/messages.ts)

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type Nullable<K extends EventField> = null extends z.output<Fields[K]["schema"]> ? true : false;
type TextBuilder = SQLiteTextBuilderInitial<"", [string, ...string[]], undefined>;
type Builder<K extends EventField> = Fields[K]["storage"] extends "integer" | "epoch_ms"
  ? SQLiteIntegerBuilderInitial<"">
  : TextBuilder;
type ColumnBuilder<K extends EventField> =
  Nullable<K> extends true ? Builder<K> : ReturnType<Builder<K>["notNull"]>;
export type EventColumns<K extends EventField> = { [P in K as Camel<ColumnOf<P>>]: ColumnBuilder<P> };

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Fresh Drizzle column builders for these fields (a builder belongs to one table). */
export function eventColumns<K extends EventField>(names: readonly K[]): EventColumns<K> {
  return Object.fromEntries(
    names.map((k) => {
      const spec = EVENT_FIELDS[k] as FieldSpec;
      const name = columnOf(k);
      if (spec.storage === "integer" || spec.storage === "epoch_ms") {
        return [camel(name), isNullable(k) ? integer(name) : integer(name).notNull()];
      }
      const base = text(name);
      const column = isNullable(k) ? base : isList(k) ? base.notNull().default("[]") : base.notNull();
      return [camel(name), column];
    }),
  ) as EventColumns<K>;
}
