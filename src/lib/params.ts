import * as z from "zod";
import { TAG_PATTERN, TOPIC_PATTERN } from "../db/event-record";

/**
 * Schemas of query and path parameters, shared by every route that takes them. They both validate
 * (lib/validate.ts) and document (/openapi.json). A parameter arrives as a string; each schema
 * turns it into its value. Messages are predicates ("must be …"): the validation hook puts the
 * parameter's name in front, so a fault reads `limit must be an integer from 1 to 1000`.
 */

/** Account id syntax (SPEC §3: a token's `sub`; `account_id` parameters; SNS topic bindings). */
export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
export const isAccountId = (value: string) => ACCOUNT_ID_PATTERN.test(value);
export const accountIdSchema = z.string().regex(ACCOUNT_ID_PATTERN, "must be an account id");

/** `account_id` of a request made with an admin token for another account. */
export const accountIdParam = accountIdSchema
  .optional()
  .meta({ description: "admin tokens only: the account to act for" });

/** One day in milliseconds: windows, retention and `days`. */
export const DAY_MS = 86_400_000;

/** A page size of lists: `limit`, 1 to `max`. */
export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 1000;

const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/**
 * An ISO 8601 date or timestamp (UTC unless it names a zone) → epoch milliseconds. Documented as
 * `format: date-time` (RFC 3339, what generated clients send); a date alone or a time without an
 * offset is also read, as UTC.
 */
export const timestampParam = z
  .string()
  .transform((value, ctx) => {
    const hasZone = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(value) && value.length > 10;
    const ms = ISO_8601.test(value)
      ? Date.parse(hasZone ? value : value.length === 10 ? `${value}T00:00:00Z` : `${value}Z`)
      : Number.NaN;
    if (Number.isNaN(ms)) {
      ctx.addIssue({ code: "custom", message: "must be an ISO 8601 timestamp" });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ format: "date-time" });

/**
 * Query strings carry text; these schemas take the text of the value they document (`5` → 5,
 * `true` → true, `a,b` → ["a", "b"]) and check that value, so the document shows `integer`,
 * `boolean` and `array` and a generated client sends numbers, booleans and arrays. Text that is not
 * such a value is left as it is, for the inner schema to refuse with the parameter's message.
 */
const INTEGER_TEXT = /^-?\d{1,15}$/;
const integerText = (value: unknown) =>
  typeof value === "string" && INTEGER_TEXT.test(value) ? Number(value) : value;
const booleanText = (value: unknown) => (value === "true" ? true : value === "false" ? false : value);

/** A whole number from `min` to `max`: `type: integer` with its `minimum` and `maximum`. */
export const integerParam = (min: number, max: number) => {
  const message = `must be an integer from ${min} to ${max}`;
  return z.preprocess(
    integerText,
    z.number({ error: message }).int(message).min(min, message).max(max, message),
  );
};

/** `limit` of a list: 1 to `max`, default 20. */
export const limitParam = (max = MAX_LIMIT, fallback = DEFAULT_LIMIT) =>
  integerParam(1, max)
    .default(fallback)
    .meta({ description: `1-${max}, default ${fallback}` });

/** `true` or `false`: `type: boolean`. */
export const booleanParam = z.preprocess(booleanText, z.boolean({ error: "must be true or false" }));

/** An exact-match value: not blank, at most `max` characters. */
export const exactParam = (max: number) =>
  z
    .string()
    .min(1, "must not be empty")
    .max(max, `must be at most ${max} characters`)
    .regex(/\S/, "must not be blank");

/** How a list travels in a query string: one parameter, its values joined with commas. */
export const COMMA_LIST = { param: { style: "form", explode: false } } as const;

/** Splits a comma list into its distinct values (trimmed); anything else is left for the array schema to refuse. */
export const splitList = (value: unknown, delimiter = ",") =>
  typeof value === "string" ? [...new Set(value.split(delimiter).map((s) => s.trim()))] : value;

/** The most values any list parameter takes (SPEC §18). */
export const MAX_LIST_VALUES = 100;

/**
 * A comma-separated list of at most `max` distinct values, each checked by `item` (empty items
 * included: `item` refuses ""). Documented as an array (`style: form`, `explode: false`) with
 * `maxItems`, so a generated client sends `a,b`.
 */
export const listParam = <T extends z.ZodType>(max: number, item: T) =>
  z
    .preprocess(
      (value) => splitList(value),
      z.array(item).min(1, "must hold at least one value").max(max, `takes at most ${max} values`),
    )
    .meta(COMMA_LIST);

/** A keyset cursor (`after`): its content is checked when it is opened (lib/keyset-cursor.ts). */
export const cursorParam = (max: number) =>
  z
    .string()
    .min(1, "is not a cursor returned by this API")
    .max(max, "is not a cursor returned by this API")
    .optional()
    .meta({ description: "next_cursor of the previous page; repeat the filters unchanged" });

/** A topic (SPEC §6). */
export const topicParam = z.string().regex(TOPIC_PATTERN, "must be 1-64 characters of [a-z0-9_.-]");
/** A tag (SPEC §6). */
export const tagParam = z.string().regex(TAG_PATTERN, "must be tags of 1-64 characters of [A-Za-z0-9_-]");
