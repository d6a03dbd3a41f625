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
    email: z.string(),
    reason: suppressionReasonSchema,
    topic: z.string().nullable().meta({ description: "null: every topic" }),
    email_id: z.string().nullable(),
    suppressed_at: z.string().meta({ description: "ISO 8601" }),
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

export const putBodySchema = z
  .object({ topic: topicSchema.nullable().optional(), account_id: accountIdParam })
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

export async function toSuppression(row: SuppressionRow): Promise<Suppression> {
  return {
    id: await suppressionId(row.accountId, row.email, row.topic),
    email: row.email,
    reason: row.reason as SuppressionReason,
    topic: topicOfColumn(row.topic),
    email_id: row.emailId,
    suppressed_at: new Date(row.suppressedAt).toISOString(),
  };
}
