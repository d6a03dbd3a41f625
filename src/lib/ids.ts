/** Prefixed identifiers. Deterministic ids (hashes) where idempotency needs them, random ones elsewhere. */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

/** 128 bits of SHA-256 over the parts joined by a separator that cannot occur in them, as 32 hex characters. */
export async function hashId(...parts: string[]): Promise<string> {
  const data = new TextEncoder().encode(parts.join("\u0000"));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return toHex(digest.subarray(0, 16));
}

/** A deterministic event id: the same inputs always name the same event, so redelivery writes nothing new. */
export async function eventId(...parts: string[]): Promise<string> {
  return `evt_${await hashId(...parts)}`;
}

/**
 * Ids that must be unique but need not be secret (request ids; events that happen once per request,
 * such as an open or a click): 64 random bits drawn once per isolate, then a counter. Drawing fresh
 * random bytes for every request cost the pixel as much CPU as routing it.
 */
let isolatePrefix: string | undefined;
let sequence = 0;

function isolateUnique(width: number): string {
  // Drawn on first use: Workers forbid random numbers at global scope.
  isolatePrefix ??= toHex(crypto.getRandomValues(new Uint8Array(8)));
  sequence = (sequence + 1) % 0x1_0000_0000;
  return isolatePrefix + sequence.toString(16).padStart(width, "0");
}

/** A unique event id for an event that happens once per request: isolate prefix, time, sequence. */
export function uniqueEventId(): string {
  return `evt_${isolateUnique(8)}${Date.now().toString(16).padStart(12, "0").slice(-8)}`;
}

export function requestId(): string {
  return `req_${isolateUnique(8)}`;
}
