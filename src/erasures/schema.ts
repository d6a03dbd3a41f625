import * as z from "zod";
import type { ErasureRow } from "../db/jobs";
import { accountIdParam } from "../lib/params";
import { emailAddressSchema } from "../suppressions/address";

/** Public shapes and request body of the erasure routes (SPEC §20). */

export const ERASURE_STATUSES = ["running", "completed"] as const;

export const removedSchema = z.object({
  events: z.number().int().min(0),
  registrations: z.number().int().min(0),
  deliveries: z.number().int().min(0),
  suppressions: z.number().int().min(0),
  parked: z.number().int().min(0),
});
export type Removed = z.infer<typeof removedSchema>;
export const NOTHING_REMOVED: Removed = {
  events: 0,
  registrations: 0,
  deliveries: 0,
  suppressions: 0,
  parked: 0,
};

export const erasureSchema = z
  .object({
    id: z.string().regex(/^era_[0-9a-f]{32}$/),
    object: z.literal("erasure"),
    status: z.enum(ERASURE_STATUSES),
    email_hash: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .meta({ description: "lowercase hex HMAC-SHA256 of the lowercased address, keyed with ERASURE_KEY" }),
    created_at: z.iso.datetime(),
    completed_at: z.iso.datetime().nullable(),
    removed: removedSchema.meta({ description: "rows removed so far (final once completed)" }),
  })
  .meta({ id: "Erasure" });
export type Erasure = z.infer<typeof erasureSchema>;

export const erasureBodySchema = z
  .object({
    email: emailAddressSchema.meta({ description: "the address to forget; matched case-insensitively" }),
    account_id: accountIdParam,
  })
  .strict()
  .meta({ id: "CreateErasure" });

export const erasureIdSchema = z
  .string()
  .regex(/^era_[0-9a-f]{32}$/, "must be an erasure id (era_…)")
  .meta({ examples: [`era_${"0".repeat(32)}`] });

export function toErasure(row: ErasureRow): Erasure {
  return {
    id: row.id,
    object: "erasure",
    status: row.status as Erasure["status"],
    email_hash: row.emailHash,
    created_at: new Date(row.createdAt).toISOString(),
    completed_at: row.completedAt === null ? null : new Date(row.completedAt).toISOString(),
    removed: JSON.parse(row.removed) as Removed,
  };
}
