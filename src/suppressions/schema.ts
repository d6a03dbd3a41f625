import * as z from "zod";
import { type SuppressionRow, topicOfColumn } from "../db/suppressions";
import { topicSchema } from "../events/record";
import { hashId } from "../lib/ids";
import { accountIdParam } from "../lib/params";
import { type SuppressionReason, suppressionReasonSchema } from "../pipeline/messages";
import { emailAddressSchema } from "./address";

/** The public suppression entry of SPEC §10. */
export const suppressionSchema = z
  .object({
    id: z.string().meta({ description: "sup_…, derived from the account, address and topic" }),
    email: z.string().nullable().meta({ description: "null for an erased address's hashed entry (§20)" }),
    email_hash: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .nullable()
      .meta({ description: "HMAC-SHA256 (hex) of an erased address; null otherwise" }),
    reason: suppressionReasonSchema,
    topic: z.string().nullable().meta({ description: "null: every topic" }),
    email_id: z.string().nullable(),
    suppressed_at: z.iso.datetime(),
    expires_at: z.iso
      .datetime()
      .nullable()
      .meta({ description: "when the entry stops suppressing; null: never" }),
  })
  .meta({ id: "Suppression" });
export type Suppression = z.infer<typeof suppressionSchema>;

export const suppressionListSchema = z
  .object({
    object: z.literal("list"),
    data: z.array(suppressionSchema),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
  })
  .meta({ id: "SuppressionList" });

export const addressEntriesSchema = z
  .object({ object: z.literal("list"), data: z.array(suppressionSchema) })
  .meta({ id: "AddressSuppressions" });

export const deletedSchema = z
  .object({ deleted: z.number().int(), email: z.string() })
  .meta({ id: "SuppressionsDeleted" });

/** KV stores an expiring entry with the same expiration and needs it at least 60 s ahead. */
export const MIN_EXPIRY_AHEAD_MS = 60_000;

/** An expires_at of a request: ISO 8601, at least 60 s ahead (KV's own minimum). */
export const expiresAtSchema = z.iso
  .datetime({ offset: true, message: "expires_at must be an ISO 8601 timestamp" })
  .refine((v) => Date.parse(v) >= Date.now() + MIN_EXPIRY_AHEAD_MS, {
    message: "expires_at must be at least 60 seconds in the future (KV's minimum expiration)",
  })
  .meta({ description: "when the entry stops suppressing; at least 60 s ahead. Omitted: never" });

export const putBodySchema = z
  .object({
    topic: topicSchema.nullable().optional(),
    expires_at: expiresAtSchema.nullable().optional(),
    account_id: accountIdParam,
  })
  .strict()
  .meta({ id: "AddSuppression" });

export const MAX_CHECK_EMAILS = 1000;

export const checkBodySchema = z
  .object({
    emails: z
      .array(emailAddressSchema)
      .min(1)
      .max(MAX_CHECK_EMAILS)
      .meta({ description: "up to 1,000 addresses, matched case-insensitively; results follow this order" }),
    topic: topicSchema.nullable().optional(),
    email_id: z.string().min(1).max(256).optional(),
    account_id: accountIdParam,
  })
  .strict()
  .meta({ id: "CheckSuppressions" });

export const checkResultSchema = z
  .object({
    data: z.array(
      z.object({ email: z.string(), suppressed: z.boolean(), reason: suppressionReasonSchema.nullable() }),
    ),
  })
  .meta({ id: "SuppressionCheck" });

/** The stable id of an entry: a hash of its key, so it needs no column and survives re-adds. */
export async function suppressionId(accountId: string, email: string, topic: string): Promise<string> {
  return `sup_${await hashId(accountId, email, topic)}`;
}

/** The public entry of a stored row (or of a change row, which holds the entry as it was). */
export async function toSuppression(
  row: Pick<
    SuppressionRow,
    "accountId" | "email" | "topic" | "reason" | "emailId" | "suppressedAt" | "expiresAt" | "emailHash"
  >,
): Promise<Suppression> {
  return {
    id: await suppressionId(row.accountId, row.email, row.topic),
    email: row.emailHash === null ? row.email : null,
    email_hash: row.emailHash,
    reason: row.reason as SuppressionReason,
    topic: topicOfColumn(row.topic),
    email_id: row.emailId,
    suppressed_at: new Date(row.suppressedAt).toISOString(),
    expires_at: row.expiresAt === null ? null : new Date(row.expiresAt).toISOString(),
  };
}
