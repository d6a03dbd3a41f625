import { and, eq, lt } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { type SuppressionImportRow, suppressionImports } from "../db/jobs";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import { toHex } from "../lib/ids";
import { type Lease, releaseLease, renewLease, takeLease } from "../lib/lease";
import { describeError, log } from "../lib/log";
import {
  type ImportField,
  type ImportRow,
  mapHeader,
  ndjsonValues,
  parseCsvRecord,
  parseImportRow,
} from "./import-format";
import type { JobMessage } from "./jobs";
import { importEntries } from "./store";

/**
 * Suppression imports (SPEC §10, §18), designed for 1,000,000 rows and 100 MiB within Worker limits:
 *
 * 1. The request streams its body into R2 (`imports/{id}` in the PARKED bucket) as a multipart
 *    upload of 8 MiB parts, counting bytes (over 100 MiB: aborted, 413): the Worker never holds more
 *    than one part. It writes the import record (control DB) and sends one JOBS_QUEUE message.
 * 2. Each JOBS_QUEUE message processes one chunk: a ranged R2 read from the byte offset where the
 *    last chunk stopped, parsed record by record, up to CHUNK_ROWS rows, written in one D1
 *    transaction (importEntries), mirrored to KV (one write per new address) and pushed as webhooks.
 *    A chunk stays under Workers' 1,000 subrequests per invocation (KV writes are subrequests), so
 *    CHUNK_ROWS is 800. The record's progress (offset, line, counts, the first 100 errors) is
 *    written with a compare-and-set on the offset, then the next chunk's message is sent.
 * 3. A chunk that fails is retried by the queue; every step is idempotent (a re-run chunk inserts
 *    nothing new), and a run whose messages were all lost is resumed by the scheduled work
 *    (resumeStalledImports). The last chunk marks the import completed, deletes the file and
 *    releases the account's import lease (§18: one import per account at a time).
 */

export const MAX_IMPORT_BYTES = 100 * 1024 * 1024;
export const MAX_IMPORT_ROWS = 1_000_000;
export const MAX_IMPORT_ERRORS = 100;
/** Rows per chunk: each new address costs one KV write, and an invocation may make 1,000 subrequests. */
export const CHUNK_ROWS = 800;
/** R2 multipart parts must all be the same size (the last excepted) and at least 5 MiB. */
const PART_BYTES = 8 * 1024 * 1024;
/** A CSV record longer than this (an unterminated quote) is rejected rather than read to the end of the file. */
const MAX_RECORD_BYTES = 64 * 1024;
const LEASE_TTL_MS = 5 * 60_000;
/** The lease name of the account's one running import (SPEC §18). */
const importLeaseName = (accountId: string) => `import:suppressions:${accountId}`;

export const importKey = (id: string) => `imports/${id}`;

export type ImportFormat = "csv" | "ndjson";

export interface ImportJobMessage {
  type: "import";
  id: string;
}

/** Streams the body to R2 and records the import; the caller sends the first chunk's message. */
export async function createImport(
  env: Env,
  accountId: string,
  format: ImportFormat,
  body: ReadableStream<Uint8Array>,
  now: number,
): Promise<SuppressionImportRow> {
  const id = `imp_${toHex(crypto.getRandomValues(new Uint8Array(16)))}`;
  const lease = await takeLease(env.DB, importLeaseName(accountId), {
    ttlMs: LEASE_TTL_MS,
    now,
    busyMessage: "another suppression import of this account is running; retry when it has finished",
  });
  try {
    const bytes = await uploadBody(env, importKey(id), body);
    if (bytes === 0) throw new ApiError("validation_error", "the file is empty", { param: "body" });
    const row: SuppressionImportRow = {
      id,
      accountId,
      status: "running",
      format,
      offset: 0,
      line: 0,
      columns: null,
      leaseHolder: lease.holder,
      rows: 0,
      accepted: 0,
      rejected: 0,
      errors: "[]",
      createdAt: now,
      updatedAt: now,
      completedAt: null,
    };
    await drizzle(env.DB).insert(suppressionImports).values(row);
    return row;
  } catch (err) {
    await releaseLease(env.DB, lease);
    throw err;
  }
}

/** Multipart upload in fixed parts; returns the byte count. Over MAX_IMPORT_BYTES: aborted, 413. */
async function uploadBody(env: Env, key: string, body: ReadableStream<Uint8Array>): Promise<number> {
  const upload = await env.PARKED.createMultipartUpload(key);
  const parts: R2UploadedPart[] = [];
  let total = 0;
  let buffer = new Uint8Array(PART_BYTES);
  let filled = 0;
  const flush = async () => {
    parts.push(await upload.uploadPart(parts.length + 1, buffer.subarray(0, filled)));
    buffer = new Uint8Array(PART_BYTES);
    filled = 0;
  };
  try {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_IMPORT_BYTES) {
        await reader.cancel();
        throw new ApiError("payload_too_large", "an import file is at most 100 MiB");
      }
      let at = 0;
      while (at < value.byteLength) {
        const n = Math.min(PART_BYTES - filled, value.byteLength - at);
        buffer.set(value.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === PART_BYTES) await flush();
      }
    }
    if (filled > 0 || parts.length === 0) await flush();
    await upload.complete(parts);
    return total;
  } catch (err) {
    await upload.abort().catch(() => {});
    throw err;
  }
}

export async function getImport(env: Env, accountId: string, id: string): Promise<SuppressionImportRow> {
  const row = await drizzle(env.DB)
    .select()
    .from(suppressionImports)
    .where(and(eq(suppressionImports.id, id), eq(suppressionImports.accountId, accountId)))
    .get();
  if (!row) throw new ApiError("not_found", `no import ${id}`);
  return row;
}

interface ImportError {
  line: number;
  message: string;
}

/** Physical lines of a byte stream from `offset`: each line's text (CR and LF removed) and its end offset. */
async function* linesFrom(stream: ReadableStream<Uint8Array>, offset: number) {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let pending: Uint8Array = new Uint8Array(0);
  let base = offset;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (value) {
        const joined = new Uint8Array(pending.byteLength + value.byteLength);
        joined.set(pending);
        joined.set(value, pending.byteLength);
        pending = joined;
      }
      let start = 0;
      for (let nl = pending.indexOf(10, start); nl !== -1; nl = pending.indexOf(10, start)) {
        const end = nl > start && pending[nl - 1] === 13 ? nl - 1 : nl;
        yield { text: decoder.decode(pending.subarray(start, end)), end: base + nl + 1, eof: false };
        start = nl + 1;
      }
      pending = pending.subarray(start);
      base += start;
      if (done) {
        if (pending.byteLength > 0) {
          const end = pending[pending.byteLength - 1] === 13 ? pending.byteLength - 1 : pending.byteLength;
          yield { text: decoder.decode(pending.subarray(0, end)), end: base + pending.byteLength, eof: true };
        }
        return;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * Processes the next chunk of an import. Returns "more" when another chunk remains (the caller sends
 * its message), "done" when the import is over (or was already), or "raced" when another run of
 * the same chunk recorded it first.
 */
export async function processImportChunk(
  env: Env,
  id: string,
  maxRows = CHUNK_ROWS,
  now = Date.now(),
): Promise<"more" | "done" | "raced"> {
  const d = drizzle(env.DB);
  const record = await d.select().from(suppressionImports).where(eq(suppressionImports.id, id)).get();
  if (record?.status !== "running") return "done";
  const lease: Lease = {
    name: importLeaseName(record.accountId),
    holder: record.leaseHolder,
    ttlMs: LEASE_TTL_MS,
    expiresAt: 0, // not read from the row: renewLease sets it when this chunk renews the lease
  };
  // A ranged read from where the last chunk stopped (R2 refuses a range that starts at the very end).
  const size = record.offset > 0 ? (await env.PARKED.head(importKey(id)))?.size : undefined;
  const object =
    size !== undefined && record.offset >= size
      ? { body: new Blob([]).stream() }
      : await env.PARKED.get(importKey(id), record.offset > 0 ? { range: { offset: record.offset } } : {});
  const errors = JSON.parse(record.errors) as ImportError[];
  let columns =
    record.columns === null ? null : (JSON.parse(record.columns) as Partial<Record<ImportField, number>>);
  let { offset, line, rows, accepted, rejected } = record;
  let status = "running";
  const reject = (at: number, message: string) => {
    rejected += 1;
    if (errors.length < MAX_IMPORT_ERRORS) errors.push({ line: at, message });
  };
  const entries = new Map<string, ImportRow>();
  let eof = object === null;
  if (object === null) {
    status = "failed";
    if (errors.length < MAX_IMPORT_ERRORS)
      errors.push({ line: line + 1, message: "the uploaded file is gone" });
  } else {
    let record_: string | null = null;
    let recordLine = 0;
    let chunkRows = 0;
    eof = true;
    for await (const physical of linesFrom(object.body, record.offset)) {
      line += 1;
      if (record_ === null) {
        record_ = physical.text;
        recordLine = line;
      } else record_ += `\n${physical.text}`;
      let values: Partial<Record<ImportField, unknown>> | { error: string } | null = null;
      if (record.format === "csv") {
        const fields = parseCsvRecord(record_);
        if (fields === null && record_.length <= MAX_RECORD_BYTES && !physical.eof) continue; // quoted line break
        if (fields === null) {
          values = { error: "a quoted field is not closed" };
        } else if (columns === null) {
          const mapped = mapHeader(fields);
          if ("error" in mapped) {
            if (errors.length < MAX_IMPORT_ERRORS) errors.push({ line: recordLine, message: mapped.error });
            status = "failed";
            offset = physical.end;
            record_ = null;
            break;
          }
          columns = mapped.columns;
          offset = physical.end;
          record_ = null;
          continue;
        } else if (fields.length === 1 && fields[0]?.trim() === "") {
          values = null; // a blank line: not a row
        } else {
          const cols = columns;
          values = Object.fromEntries(
            Object.entries(cols).map(([field, i]) => [field, fields[i as number]]),
          ) as Partial<Record<ImportField, unknown>>;
        }
      } else if (record_.trim() !== "") {
        values = ndjsonValues(record_);
      }
      offset = physical.end;
      record_ = null;
      if (values === null) continue;
      rows += 1;
      chunkRows += 1;
      if (rows > MAX_IMPORT_ROWS) {
        rows -= 1;
        if (errors.length < MAX_IMPORT_ERRORS)
          errors.push({
            line: recordLine,
            message: `the file has more than ${MAX_IMPORT_ROWS} rows; the rest was not read`,
          });
        status = "failed";
        break;
      }
      const parsed = "error" in values ? values : parseImportRow(values, now);
      if ("error" in parsed) reject(recordLine, parsed.error as string);
      else {
        accepted += 1;
        const key = `${parsed.row.email}\u0000${parsed.row.topic}`;
        if (!entries.has(key)) entries.set(key, parsed.row);
      }
      if (chunkRows >= maxRows && !physical.eof) {
        eof = false;
        break;
      }
    }
  }
  try {
    await importEntries(env, env.DB, record.accountId, [...entries.values()], now);
  } catch (err) {
    log("warn", "import chunk not written; the queue retries it", { import_id: id, ...describeError(err) });
    throw err;
  }
  const finished = eof || status !== "running";
  const at = Date.now();
  const { meta } = await env.DB.prepare(
    `UPDATE suppression_imports SET status = ?3, "offset" = ?4, line = ?5, columns = ?6, rows = ?7, accepted = ?8,
       rejected = ?9, errors = ?10, updated_at = ?11, completed_at = ?12
     WHERE id = ?1 AND "offset" = ?2 AND status = 'running'`,
  )
    .bind(
      id,
      record.offset,
      finished && status === "running" ? "completed" : status,
      offset,
      line,
      columns === null ? null : JSON.stringify(columns),
      rows,
      accepted,
      rejected,
      JSON.stringify(errors),
      at,
      finished ? at : null,
    )
    .run();
  if (meta.changes === 0) return "raced";
  if (finished) {
    await env.PARKED.delete(importKey(id)).catch(() => {});
    await releaseLease(env.DB, lease);
    return "done";
  }
  await renewLease(env.DB, lease);
  return "more";
}

/** Runs chunks until the import is over (the JOBS_QUEUE consumer does one per message instead). */
export async function runImport(env: Env, id: string, maxRows = CHUNK_ROWS): Promise<void> {
  while ((await processImportChunk(env, id, maxRows)) === "more") {}
}

/**
 * Imports whose run stalled (no progress for 2 minutes: every message lost) get their next chunk's
 * message again. A message still in flight meanwhile only races the resumed one, and the
 * compare-and-set on the offset lets one of them record the chunk.
 */
export async function resumeStalledImports(
  env: Env,
  now: number,
  staleMs = 2 * 60_000,
): Promise<{ resumed: number }> {
  const rows = await drizzle(env.DB)
    .select({ id: suppressionImports.id })
    .from(suppressionImports)
    .where(and(eq(suppressionImports.status, "running"), lt(suppressionImports.updatedAt, now - staleMs)))
    .limit(50);
  for (const { id } of rows)
    await env.JOBS_QUEUE.send({ type: "import", id } satisfies JobMessage, { contentType: "json" });
  return { resumed: rows.length };
}
