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

/** An ISO 8601 date or timestamp (UTC unless it names a zone) → epoch milliseconds. */
export const timestampParam = z.string().transform((value, ctx) => {
  const hasZone = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(value) && value.length > 10;
  const ms = ISO_8601.test(value)
    ? Date.parse(hasZone ? value : value.length === 10 ? `${value}T00:00:00Z` : `${value}Z`)
    : Number.NaN;
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: "custom", message: "must be an ISO 8601 timestamp" });
    return z.NEVER;
  }
  return ms;
});

/** A whole number from `min` to `max`. */
export const integerParam = (min: number, max: number) => {
  const message = `must be an integer from ${min} to ${max}`;
  return z
    .string()
    .regex(/^\d{1,7}$/, message)
    .transform(Number)
    .refine((n) => n >= min && n <= max, message);
};

/** `limit` of a list: 1 to `max`, default 20. */
export const limitParam = (max = MAX_LIMIT) =>
  integerParam(1, max)
    .optional()
    .transform((n) => n ?? DEFAULT_LIMIT)
    .meta({ description: `1-${max}, default ${DEFAULT_LIMIT}` });

/** `true` or `false`. */
export const booleanParam = z
  .enum(["true", "false"], { error: "must be true or false" })
  .transform((v) => v === "true");

/** An exact-match value: not blank, at most `max` characters. */
export const exactParam = (max: number) =>
  z
    .string()
    .refine((v) => v.trim() !== "", "must not be empty")
    .refine((v) => v.length <= max, `must be at most ${max} characters`);

/** A comma-separated list of at most `max` distinct items, each checked by `item`. */
export const listParam = (max: number, item: z.ZodType<string>) =>
  z.string().transform((value, ctx) => {
    const items = [...new Set(value.split(",").map((s) => s.trim()))];
    if (items.some((s) => s === "")) {
      ctx.addIssue({ code: "custom", message: "must be a comma-separated list without empty items" });
      return z.NEVER;
    }
    if (items.length > max) {
      ctx.addIssue({ code: "custom", message: `takes at most ${max} values` });
      return z.NEVER;
    }
    for (const it of items) {
      const checked = item.safeParse(it);
      if (!checked.success) {
        ctx.addIssue({ code: "custom", message: checked.error.issues[0]?.message ?? "has an invalid item" });
        return z.NEVER;
      }
    }
    return items;
  });

/** A keyset cursor (`after`): its content is checked when it is opened (lib/keyset-cursor.ts). */
export const cursorParam = (max: number) =>
  z
    .string()
    .refine((v) => v !== "" && v.length <= max, "is not a cursor returned by this API")
    .optional()
    .meta({ description: "next_cursor of the previous page; repeat the filters unchanged" });

/** A topic (SPEC §6). */
export const topicParam = z.string().regex(TOPIC_PATTERN, "must be 1-64 characters of [a-z0-9_.-]");
/** A tag (SPEC §6). */
export const tagParam = z.string().regex(TAG_PATTERN, "must be tags of 1-64 characters of [A-Za-z0-9_-]");
