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

/** A fresh random event id, for events that happen once per request (an open, a click). */
export function randomEventId(): string {
  return `evt_${toHex(crypto.getRandomValues(new Uint8Array(16)))}`;
}

export function requestId(): string {
  return `req_${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;
}
