import * as z from "zod";
import { fromBase64url, toBase64url } from "./base64";
import { validationError } from "./errors";

/**
 * Opaque keyset cursors (`after`) for the list routes: base64url JSON of a version, a fingerprint
 * of what the cursor was issued for (account and filters), and the position. A cursor presented
 * with another fingerprint is refused with `400` naming `after`.
 */

const NOT_A_CURSOR = "after is not a cursor returned by this API";

/**
 * A time inside a cursor (epoch milliseconds). Cursors are only base64 JSON, so a client can edit
 * one: a number D1 cannot bind (1e300, a fraction) must be a 400 here, not a 500 from the query.
 */
export const cursorTime = z.number().int().min(0).max(8.64e15);

export function sealCursor(fingerprint: string, position: Record<string, string | number>): string {
  return toBase64url(new TextEncoder().encode(JSON.stringify({ v: 1, h: fingerprint, ...position })));
}

export function openCursor<S extends z.ZodObject>(
  cursor: string,
  fingerprint: string,
  positionSchema: S,
  mismatch: string,
): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(fromBase64url(cursor) ?? new Uint8Array()));
  } catch {
    throw validationError("after", NOT_A_CURSOR);
  }
  const parsed = positionSchema.extend({ v: z.literal(1), h: z.string() }).safeParse(value);
  if (!parsed.success) throw validationError("after", NOT_A_CURSOR);
  if (parsed.data.h !== fingerprint) throw validationError("after", mismatch);
  return parsed.data as z.output<S>;
}
