import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import type { Env } from "../env";
import { LeaseKeeper, leasedStream, takeLease } from "../lib/lease";
import { log } from "../lib/log";
import { type App, commonErrors, route } from "../lib/openapi";
import { accountIdParam } from "../lib/params";
import { type EventPage, listEvents } from "./list";
import { eventFilterParams, eventWindowParams, toEventQuery } from "./query";
import { eventSchema, type PublicEvent } from "./serialize";

/**
 * GET /v1/events/export (SPEC §9): every matching event of the clamped window as NDJSON or CSV,
 * streamed. It pages through GET /v1/events itself (listEvents with `after`), one page per pull of
 * the response stream, so the file is by construction the concatenation of the API's pages and the
 * Worker holds one page at a time whatever the window's size. The first page is read before the
 * response starts: every bad parameter is a 400 before any byte is sent.
 */

export const EXPORT_FORMATS = ["ndjson", "csv"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
/** Events per D1 page: GET /v1/events's own maximum `limit`. */
export const EXPORT_PAGE_SIZE = 1000;
/** An export's slot is lost this long after its stream last made progress (SPEC §18). */
export const EXPORT_LEASE_TTL_MS = 5 * 60_000;
/**
 * The last line of an export that could not finish (SPEC §9: aborted, never ended as if complete):
 * not JSON, and one field where CSV rows have many.
 */
export const ABORTED_LINE =
  "\n!export aborted before its end (a storage dependency failed): this file is incomplete\n";
/**
 * The export's query: GET /v1/events's window and filters (not `limit`, `after` or `count`, which
 * make no sense for a whole-window file: unknown parameters, so 400) and `format`.
 */
export const exportQuerySchema = z.object({
  format: z
    .enum(EXPORT_FORMATS, { error: "must be ndjson or csv" })
    .default("ndjson")
    .meta({ description: "ndjson (default) or csv" }),
  ...eventWindowParams,
  ...eventFilterParams,
  account_id: accountIdParam,
});
type ExportQuery = Omit<z.output<typeof exportQuerySchema>, "account_id">;

/** The §8 fields in their documented order: the CSV header. Derived from the event schema. */
export const CSV_COLUMNS = Object.keys(eventSchema.shape) as (keyof PublicEvent)[];

/** One CSV field per RFC 4180: quoted when it holds a comma, a quote, CR or LF; quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** A §8 event as one CSV record (CRLF-terminated): null is empty, `tags` joined with `,`, `tracking` as JSON. */
export function csvRecord(event: PublicEvent): string {
  const cells = CSV_COLUMNS.map((column) => {
    const value = event[column];
    if (value === null) return "";
    if (column === "tags") return csvField((value as string[]).join(","));
    if (typeof value === "object") return csvField(JSON.stringify(value));
    return csvField(String(value));
  });
  return `${cells.join(",")}\r\n`;
}

export const csvHeader = () => `${CSV_COLUMNS.join(",")}\r\n`;
export const ndjsonLine = (event: PublicEvent) => `${JSON.stringify(event)}\n`;

/** `2026-04-09T10:30:09.000Z` → `20260409T103009Z`, safe in a file name everywhere. */
const compactInstant = (iso: string) => iso.replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");

export function exportFileName(accountId: string, window: EventPage["window"], format: ExportFormat): string {
  const account = accountId.replace(/[^A-Za-z0-9_.-]/g, "_");
  return `mailtrail-events-${account}-${compactInstant(window.start)}-${compactInstant(window.end)}.${format}`;
}

/**
 * Starts an export: validates the parameters and reads the first page (throwing ApiErrors before any
 * byte), then returns the streamed body. `now` is fixed for the whole export, so every page clamps
 * the window the same way.
 */
export async function startExport(
  env: Env,
  accountId: string,
  input: ExportQuery,
  now = Date.now(),
): Promise<{ body: ReadableStream<Uint8Array>; format: ExportFormat; fileName: string }> {
  const { format, ...filters } = input;
  const base = toEventQuery({ ...filters, limit: EXPORT_PAGE_SIZE });
  // The pages' cursors are bound to the filters as given: the same text GET /v1/events would see.
  const params = new URLSearchParams(
    Object.entries(filters).flatMap(([name, value]) =>
      value === undefined ? [] : [[name, Array.isArray(value) ? value.join(",") : String(value)]],
    ),
  );
  const pageParams = (after: string | null) => {
    const p = new URLSearchParams(params);
    p.set("limit", String(EXPORT_PAGE_SIZE));
    if (after !== null) p.set("after", after);
    return p;
  };
  const readPage = (after: string | null) =>
    listEvents(env, accountId, pageParams(after), now, { ...base, after });
  const first = await readPage(null);
  const encoder = new TextEncoder();
  const line = format === "csv" ? csvRecord : ndjsonLine;

  let pending: EventPage | null = first;
  let cursor: string | null = null;
  let headerSent = format !== "csv";
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          let text = headerSent ? "" : csvHeader();
          headerSent = true;
          // A page may hold no events while the scan continues (bounded pages): read on until one
          // does or the window ends, so each pull enqueues something or closes.
          for (;;) {
            const page: EventPage | null = pending ?? (cursor !== null ? await readPage(cursor) : null);
            pending = null;
            if (page === null) {
              if (text !== "") controller.enqueue(encoder.encode(text));
              controller.close();
              return;
            }
            cursor = page.has_more ? page.next_cursor : null;
            for (const event of page.data) text += line(event);
            if (text !== "") {
              controller.enqueue(encoder.encode(text));
              return;
            }
          }
        } catch (err) {
          // Headers are sent. The body is errored (on Cloudflare the transfer is cut, which curl and
          // fetch report), but workerd locally ends an errored body like a complete one, so the
          // last bytes are also a line no parser accepts as an event or a record: a client that
          // reads the file as NDJSON or CSV fails instead of taking it as the whole window.
          log("error", "export failed mid-stream", { account_id: accountId, error: String(err) });
          controller.enqueue(encoder.encode(ABORTED_LINE));
          controller.error(err);
        }
      },
    },
    { highWaterMark: 1 },
  );
  return { body, format, fileName: exportFileName(accountId, first.window, format) };
}

export function registerEventExportRoute(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/events/export",
      operationId: "exportEvents",
      summary: "Export a window of events as NDJSON or CSV",
      description:
        "Takes the window and filters of `GET /v1/events` (not `limit`, `after` or `count`: 400) and streams " +
        "every matching event of the clamped window, newest first, in constant memory: the file is GET /v1/events's " +
        "pages concatenated, read one page at a time as the client downloads. Bad parameters are a 400 before " +
        "any byte. NDJSON: one event object per line, LF-terminated. CSV (RFC 4180): a header row of the event's " +
        "fields in their documented order, CRLF line ends, fields quoted when they hold a comma, quote or line " +
        "break (quotes doubled), null as an empty field, `tags` joined with `,`, `tracking` as JSON text, UTF-8 " +
        "without a byte-order mark; values are written as stored (no spreadsheet-formula escaping). " +
        "`Content-Disposition: attachment` names the file after the account and the window, so `curl -OJ` " +
        "or `curl -o` saves it. A failure after the first byte aborts the transfer (curl reports it), and its last " +
        "bytes are a line that is neither JSON nor a CSV record (`!export aborted…`), so a parser fails too. " +
        "One export per account runs at a time: a second answers 429 with Retry-After until the first ends, is " +
        "cancelled, or has made no progress for 5 minutes. " +
        "Rules between fields as in GET /v1/events: `days` not with `start`, `start` not after `end`, `domain` " +
        "one the account has sent from.",
      tags: ["events"],
      security: [{ bearer: [] }],
      request: { query: exportQuerySchema },
      responses: {
        200: {
          description: "The events, streamed",
          content: {
            "application/x-ndjson": { schema: z.string().meta({ description: "one event per line" }) },
            "text/csv": { schema: z.string().meta({ description: "a header row, then one event per row" }) },
          },
        },
        ...commonErrors,
      },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const { account_id, ...input } = query;
      const accountId = actingAccount(principalOf(c), account_id);
      // One export per account at a time (SPEC §18): the slot is held while the stream makes
      // progress, freed when it ends or is cancelled, and lost 5 minutes after its last progress.
      const lease = await takeLease(c.env.DB, `export:events:${accountId}`, {
        ttlMs: EXPORT_LEASE_TTL_MS,
        busyMessage: "an export of this account is already running; retry when it ends",
      });
      const keeper = new LeaseKeeper(c.env.DB, lease);
      let started: Awaited<ReturnType<typeof startExport>>;
      try {
        started = await startExport(c.env, accountId, input);
      } catch (err) {
        await keeper.release();
        throw err;
      }
      const { format, fileName } = started;
      const body = leasedStream(started.body, keeper, (p) => c.executionCtx.waitUntil(p));
      return new Response(body, {
        headers: {
          "Content-Type":
            format === "csv"
              ? "text/csv; charset=utf-8; header=present"
              : "application/x-ndjson; charset=utf-8",
          "Content-Disposition": `attachment; filename="${fileName}"`,
          "Cache-Control": "no-store",
          "X-Content-Type-Options": "nosniff",
        },
      });
    },
  );
}
