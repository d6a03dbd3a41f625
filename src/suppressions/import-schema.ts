import * as z from "zod";
import type { SuppressionImportRow } from "../db/jobs";

/** The import record of SPEC §10. */
export const importSchema = z
  .object({
    id: z.string().regex(/^imp_[0-9a-f]{32}$/),
    object: z.literal("suppression_import"),
    status: z.enum(["running", "completed", "failed"]),
    rows: z
      .number()
      .int()
      .min(0)
      .meta({ description: "data rows read so far (the header not counted): accepted + rejected" }),
    accepted: z.number().int().min(0),
    rejected: z.number().int().min(0),
    errors: z
      .array(z.object({ line: z.number().int().min(1), message: z.string() }))
      .max(100)
      .meta({
        description: "the first 100 rejected rows, by the file's own line number (a CSV header is line 1)",
      }),
    created_at: z.iso.datetime(),
    completed_at: z.iso.datetime().nullable(),
  })
  .meta({ id: "SuppressionImport" });
export type SuppressionImport = z.infer<typeof importSchema>;

export const importIdSchema = z
  .string()
  .regex(/^imp_[0-9a-f]{32}$/, "must be an import id (imp_…)")
  .meta({ examples: [`imp_${"0".repeat(32)}`] });

export function toImport(row: SuppressionImportRow): SuppressionImport {
  return {
    id: row.id,
    object: "suppression_import",
    status: row.status as SuppressionImport["status"],
    rows: row.rows,
    accepted: row.accepted,
    rejected: row.rejected,
    errors: JSON.parse(row.errors) as SuppressionImport["errors"],
    created_at: new Date(row.createdAt).toISOString(),
    completed_at: row.completedAt === null ? null : new Date(row.completedAt).toISOString(),
  };
}
