import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import type { SuppressionRow } from "../../db/suppressions";
import { releaseLease, renewLease, takeLease } from "../../lib/lease";
import { describeError, log } from "../../lib/log";
import { type App, BEARER, commonErrors, route } from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { csvField, EXPORT_COLUMNS } from "../import-format";
import { type Suppression, toSuppression } from "../schema";
import { exportChunk } from "../store";
import { accountFor, tags } from "./shared";

/** Rows per D1 read of the export (SPEC §18: at most 10,000 rows a read). */
const EXPORT_CHUNK = 1000;
const LEASE_TTL_MS = 5 * 60_000;

const exportRowSchema = z.object(
  Object.fromEntries(EXPORT_COLUMNS.map((c) => [c, z.string().nullable()])) as Record<
    (typeof EXPORT_COLUMNS)[number],
    z.ZodNullable<z.ZodString>
  >,
);

const csvLine = (entry: Suppression) => `${EXPORT_COLUMNS.map((c) => csvField(entry[c] ?? "")).join(",")}\n`;
const ndjsonLine = (entry: Suppression) =>
  `${JSON.stringify(Object.fromEntries(EXPORT_COLUMNS.map((c) => [c, entry[c] ?? null])))}\n`;

export function registerExportSuppressions(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/suppressions/export",
      operationId: "exportSuppressions",
      summary: "Stream every suppression entry (CSV or NDJSON)",
      description:
        "Every live entry of the account, in address order, streamed in constant memory, in the columns the import " +
        `takes plus \`id\`, \`email_id\`, \`suppressed_at\`: ${EXPORT_COLUMNS.join(", ")} (an erased address's entries ` +
        "have an empty `email` and their `email_hash`). Re-imported elsewhere, it reproduces the list. One export per " +
        "account at a time (a second: `429` with Retry-After). A stream that cannot finish is aborted, never ended as if complete.",
      tags,
      security: BEARER,
      request: {
        query: z.object({
          format: z
            .enum(["csv", "ndjson"], { error: "must be csv or ndjson" })
            .default("csv")
            .meta({ description: "csv (default) or ndjson" }),
          account_id: accountIdParam,
        }),
      },
      responses: {
        200: {
          description: "The entries",
          content: {
            "text/csv": { schema: z.string() },
            "application/x-ndjson": { schema: exportRowSchema },
          },
        },
        ...commonErrors,
      },
    },
    requireScope("suppressions:read"),
    async (c, { query }) => {
      const accountId = accountFor(c, query.account_id);
      const env = c.env;
      const lease = await takeLease(env.DB, `export:suppressions:${accountId}`, {
        ttlMs: LEASE_TTL_MS,
        busyMessage: "another suppression export of this account is running; retry when it has finished",
      });
      const csv = query.format === "csv";
      const encoder = new TextEncoder();
      let after: { email: string; topic: string } | null = null;
      let headerSent = !csv;
      let done = false;
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            if (!headerSent) {
              headerSent = true;
              controller.enqueue(encoder.encode(`${EXPORT_COLUMNS.join(",")}\n`));
            }
            const rows: SuppressionRow[] = await exportChunk(env.DB, accountId, after, EXPORT_CHUNK);
            const entries = await Promise.all(rows.map(toSuppression));
            if (entries.length > 0) {
              controller.enqueue(encoder.encode(entries.map(csv ? csvLine : ndjsonLine).join("")));
            }
            const last = rows[rows.length - 1];
            if (rows.length < EXPORT_CHUNK || last === undefined) {
              done = true;
              controller.close();
              await releaseLease(env.DB, lease);
              return;
            }
            after = { email: last.email, topic: last.topic };
            await renewLease(env.DB, lease);
          } catch (err) {
            log("error", "suppression export failed midway; the stream is aborted", describeError(err));
            controller.error(err);
            await releaseLease(env.DB, lease).catch(() => {});
          }
        },
        async cancel() {
          if (!done) await releaseLease(env.DB, lease).catch(() => {});
        },
      });
      const stamp = new Date().toISOString().slice(0, 10);
      return new Response(stream, {
        headers: {
          "content-type": csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
          "content-disposition": `attachment; filename="suppressions-${stamp}.${csv ? "csv" : "ndjson"}"`,
        },
      });
    },
  );
}
