import type { Context } from "hono";
import type * as z from "zod";
import { ApiError } from "./errors";
import { parseValue } from "./validate";

export { zodToApiError } from "./validate";

export const MAX_JSON_BYTES = 1024 * 1024;

/**
 * How much of a refused body is read and thrown away before the 413 is sent. Answering while the
 * client is still sending leaves unread bytes on the connection: `wrangler dev`'s proxy then reused
 * that connection for the next request, which failed with `503 "Your worker restarted mid-request"`.
 * Reading the rest first leaves the connection clean, as HTTP servers do ("lingering close"). Past
 * this cap the body is cancelled instead: nobody can make the Worker read without bound.
 */
export const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;

/**
 * Reads a request body as text, refusing more than `maxBytes` without buffering it all: the
 * Content-Length is checked first, then the stream is counted as it arrives. A refused body is
 * drained (up to DRAIN_LIMIT_BYTES) before the error is thrown.
 */
export async function readBodyText(request: Request, maxBytes: number, what: string): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > maxBytes) {
    if (request.body) await discardBody(request.body.getReader(), 0);
    throw tooLarge(maxBytes, what);
  }
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      chunks.length = 0;
      await discardBody(reader, total);
      throw tooLarge(maxBytes, what);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * Drains a body the handler never read (a 401 or 415 answered before the body, a route that needs
 * none), for the same reason as a refused one: the connection must be left clean for the next request.
 */
export async function drainUnreadBody(request: Request): Promise<void> {
  const body = request.body;
  if (body && !request.bodyUsed && !body.locked) await discardBody(body.getReader(), 0);
}

/** Reads the rest of a body without keeping it, up to the drain cap; beyond it, cancels. */
async function discardBody(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  alreadyRead: number,
): Promise<void> {
  let total = alreadyRead;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      total += value.byteLength;
      if (total > DRAIN_LIMIT_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The client went away: nothing left to drain.
  }
}

function tooLarge(maxBytes: number, what: string): ApiError {
  const size = maxBytes >= 1024 * 1024 ? `${maxBytes / (1024 * 1024)} MiB` : `${maxBytes / 1024} KiB`;
  return new ApiError("payload_too_large", `${what} must be at most ${size}`);
}

/**
 * A JSON request body against its schema: 415 unless application/json, 413 over 1 MiB, 400
 * otherwise. An optional body may be absent, or empty even when labelled JSON: it is then `{}`.
 */
export async function parseJsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  options: { optional?: boolean } = {},
): Promise<z.output<S>> {
  if (options.optional && !hasBody(c)) return parseValue(schema, {});
  // route() has usually read the body already; a handler that parses it again gets the same JSON.
  if (!jsonBodies.has(c.req.raw)) jsonBodies.set(c.req.raw, await readJson(c, options.optional === true));
  return parseValue(schema, jsonBodies.get(c.req.raw));
}

/** The JSON value of each request's body, once read: a body stream can be read only once. */
const jsonBodies = new WeakMap<Request, unknown>();

async function readJson(c: Context, optional: boolean): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new ApiError("unsupported_media_type", "the body must be application/json");
  }
  const text = await readBodyText(c.req.raw, MAX_JSON_BYTES, "a JSON body");
  try {
    // An optional body may be empty even when the client labelled it JSON.
    return optional && text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    throw new ApiError("validation_error", "the body is not valid JSON");
  }
}

/** Whether a request carries a body at all (an optional body may be left out). */
function hasBody(c: Context): boolean {
  const length = c.req.header("content-length");
  if (length === "0") return false;
  return c.req.header("content-type") !== undefined || length !== undefined || c.req.raw.body !== null;
}
