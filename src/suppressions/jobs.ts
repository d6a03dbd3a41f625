import * as z from "zod";

/** What JOBS_QUEUE carries (src/queue/jobs.ts): a discriminated union on `type`. */
export const jobMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("import"), id: z.string().regex(/^imp_[0-9a-f]{32}$/) }),
]);
export type JobMessage = z.infer<typeof jobMessageSchema>;
