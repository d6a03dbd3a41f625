/**
 * Sealed tracking tokens (SPEC §5): opaque, URL-safe, authenticated and encrypted with AES-256-GCM.
 * A token is self-contained, so the pixel, click and unsubscribe routes never read D1 or KV.
 *
 * Layout, base64url without padding:
 *
 *   byte 0        header: version (3 high bits, currently 1) | key id (5 low bits)
 *   bytes 1..12   IV, random per token
 *   bytes 13..    AES-GCM ciphertext of the payload, then its 16-byte tag; the header byte is the
 *                 additional authenticated data, so neither version nor key id can be swapped.
 *
 * The key id is the low 5 bits of SHA-256(key), not the key's position in TRACKING_KEYS: rotating
 * reorders the list, and a token must still find its key. Ids may collide; every key with the id is tried.
 *
 * Payload (compact binary, not JSON, to fit the SPEC §5 size budget):
 *
 *   flags       1 byte: bits 0-1 kind (0 open, 1 click, 2 unsubscribe), bit 2 email_id is `email_<uuid>`
 *               stored as 16 bytes, bit 3 topic present, bit 4 link name present, bits 5-6 URL scheme
 *               (clicks only: 1 `https://`, 2 `http://`, stored without the prefix), bit 7 zero
 *   issued_at   4 bytes, unsigned big-endian epoch seconds
 *   email_id    16 bytes (compact) or varint length + UTF-8
 *   account_id  varint length + UTF-8
 *   topic       varint length + ASCII, when flagged
 *   open, unsubscribe:  recipient, UTF-8 to the end
 *   click:              link name (varint length + UTF-8, when flagged), recipient (varint length + UTF-8),
 *                       then the URL after its scheme, UTF-8 to the end
 */
import { TOPIC_PATTERN } from "../events/record";
import { fromBase64url, toBase64url } from "../lib/base64";
import { toHex } from "../lib/ids";

export type TokenKind = "open" | "click" | "unsubscribe";

export interface TokenPayload {
  kind: TokenKind;
  account_id: string;
  email_id: string;
  recipient: string;
  topic: string | null;
  /** Epoch seconds. */
  issued_at: number;
  /** Clicks only: the http(s) target. */
  url?: string;
  /** Clicks only: the anchor's `data-mt-name`, or null. */
  link_name?: string | null;
}

export interface TrackingKey {
  /** 5-bit fingerprint: SHA-256(key)[0] & 0x1f. */
  readonly id: number;
  readonly key: CryptoKey;
}

/** Imported keys; build once per isolate and reuse (importing costs a digest and an importKey per key). */
export interface TrackingKeyring {
  /** The first key of TRACKING_KEYS: seals every new token. */
  readonly sealing: TrackingKey;
  /** Every key, the sealing one included: any of them opens. */
  readonly keys: readonly TrackingKey[];
}

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Longest token accepted or produced: a URL of roughly 9 KB, well inside Cloudflare's 16 KB URL limit. */
export const MAX_TOKEN_LENGTH = 12_288;
/** header + IV + tag + the smallest payload (flags, issued_at, three 1-byte strings, two length-prefixed). */
const MIN_TOKEN_BYTES = 1 + IV_BYTES + TAG_BYTES + 1 + 4 + 2 + 2 + 1;

const KIND_CODES: Record<TokenKind, number> = { open: 0, click: 1, unsubscribe: 2 };
const KINDS: readonly TokenKind[] = ["open", "click", "unsubscribe"];

const FLAG_KIND_MASK = 0b0000_0011;
const FLAG_COMPACT_EMAIL_ID = 0b0000_0100;
const FLAG_TOPIC = 0b0000_1000;
const FLAG_LINK_NAME = 0b0001_0000;
const FLAG_SCHEME_SHIFT = 5;
const FLAG_SCHEME_MASK = 0b0110_0000;
const FLAG_RESERVED = 0b1000_0000;
const SCHEMES = ["", "https://", "http://"] as const;

const COMPACT_EMAIL_ID = /^email_([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/;
const LONE_SURROGATE = /\p{Cs}/u;

const encoder = new TextEncoder();
// fatal: reject invalid UTF-8; ignoreBOM: keep a leading U+FEFF so every string round-trips exactly.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------
// Keys

/** Imports raw 32-byte keys as non-extractable AES-GCM keys; the first one seals. */
export async function importTrackingKeys(keys: Uint8Array[]): Promise<TrackingKeyring> {
  if (keys.length === 0) throw new Error("TRACKING_KEYS must hold at least one key");
  const imported = await Promise.all(
    keys.map(async (raw, index): Promise<TrackingKey> => {
      if (raw.length !== KEY_BYTES) throw new Error(`TRACKING_KEYS: key ${index + 1} is not 32 bytes`);
      const bytes = new Uint8Array(raw);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      const key = await crypto.subtle.importKey("raw", bytes, { name: "AES-GCM" }, false, [
        "encrypt",
        "decrypt",
      ]);
      return { id: digest[0]! & 0x1f, key };
    }),
  );
  return { sealing: imported[0]!, keys: imported };
}

// ---------------------------------------------------------------------------------------------
// Seal and open

/**
 * Seals a payload into a token with the keyring's first key. Throws a TypeError on a payload that
 * could never be opened (empty ids, a malformed topic, a click without an http(s) URL, …): that is
 * a caller's bug, not a request error.
 */
export async function sealToken(keyring: TrackingKeyring, payload: TokenPayload): Promise<string> {
  const plaintext = encodePayload(payload);
  const header = new Uint8Array([(VERSION << 5) | keyring.sealing.id]);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: header, tagLength: TAG_BYTES * 8 },
      keyring.sealing.key,
      plaintext,
    ),
  );
  const token = toBase64url(concat([header, iv, sealed]));
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new TypeError(`tracking token would be ${token.length} characters, over ${MAX_TOKEN_LENGTH}`);
  }
  return token;
}

/**
 * Opens a token of the expected kind. Returns null on any failure: not base64url, wrong length,
 * unknown version or key, failed authentication, another kind, a malformed payload. Never throws.
 */
export async function openToken(
  keyring: TrackingKeyring,
  token: string,
  expectedKind: TokenKind,
): Promise<TokenPayload | null> {
  try {
    if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return null;
    const bytes = fromBase64url(token);
    if (bytes === null || bytes.length < MIN_TOKEN_BYTES) return null;
    const header = bytes.subarray(0, 1);
    if (header[0]! >> 5 !== VERSION) return null;
    const keyId = header[0]! & 0x1f;
    const iv = bytes.subarray(1, 1 + IV_BYTES);
    const sealed = bytes.subarray(1 + IV_BYTES);
    for (const candidate of keyring.keys) {
      if (candidate.id !== keyId) continue;
      let plaintext: Uint8Array;
      try {
        plaintext = new Uint8Array(
          await crypto.subtle.decrypt(
            { name: "AES-GCM", iv, additionalData: header, tagLength: TAG_BYTES * 8 },
            candidate.key,
            sealed,
          ),
        );
      } catch {
        continue; // another key with the same id, or a forgery
      }
      const payload = decodePayload(plaintext);
      return payload !== null && payload.kind === expectedKind ? payload : null;
    }
    return null;
  } catch {
    return null;
  }
}

/**
 * The token's 96-bit IV as 24 hex characters: random per sealed token (AES-GCM must never reuse
 * one under a key) and authenticated (a changed IV fails the tag), so it names one token without
 * hashing anything. Its first 20 characters are 15 whole bytes (header, IV, 2 more), so there is
 * only one way to write them. Call it on a token openToken accepted.
 */
export function tokenNonce(token: string): string | null {
  const bytes = fromBase64url(token.slice(0, 20));
  return bytes !== null && bytes.length >= 1 + IV_BYTES ? toHex(bytes.subarray(1, 1 + IV_BYTES)) : null;
}

// ---------------------------------------------------------------------------------------------
// Payload encoding

function encodePayload(payload: TokenPayload): Uint8Array {
  const kindCode = KIND_CODES[payload.kind];
  if (kindCode === undefined) throw new TypeError("tracking token: kind must be open, click or unsubscribe");
  const issuedAt = payload.issued_at;
  if (!Number.isInteger(issuedAt) || issuedAt < 0 || issuedAt > 0xffff_ffff) {
    throw new TypeError("tracking token: issued_at must be whole epoch seconds between 0 and 2^32 - 1");
  }
  const accountId = requireText("account_id", payload.account_id);
  const emailId = requireText("email_id", payload.email_id);
  const recipient = requireText("recipient", payload.recipient);
  const topic = payload.topic ?? null;
  if (topic !== null && (typeof topic !== "string" || !TOPIC_PATTERN.test(topic))) {
    throw new TypeError("tracking token: topic must be 1-64 characters of [a-z0-9_.-]");
  }

  let flags = kindCode;
  const parts: Uint8Array[] = [];
  const issued = new Uint8Array(4);
  new DataView(issued.buffer).setUint32(0, issuedAt);
  parts.push(issued);

  const compact = COMPACT_EMAIL_ID.exec(emailId);
  if (compact) {
    flags |= FLAG_COMPACT_EMAIL_ID;
    parts.push(hexToBytes(compact.slice(1).join("")));
  } else {
    parts.push(...lengthPrefixed(emailId));
  }
  parts.push(...lengthPrefixed(accountId));
  if (topic !== null) {
    flags |= FLAG_TOPIC;
    parts.push(...lengthPrefixed(topic));
  }

  if (payload.kind === "click") {
    const url = typeof payload.url === "string" ? payload.url : "";
    const scheme = SCHEMES.findIndex(
      (prefix) => prefix !== "" && url.slice(0, prefix.length).toLowerCase() === prefix,
    );
    if (scheme <= 0 || url.length === SCHEMES[scheme]!.length) {
      throw new TypeError("tracking token: a click needs an absolute http(s) url");
    }
    requireText("url", url);
    flags |= scheme << FLAG_SCHEME_SHIFT;
    const linkName = payload.link_name ?? null;
    if (linkName !== null) {
      flags |= FLAG_LINK_NAME;
      parts.push(...lengthPrefixed(requireText("link_name", linkName, { allowEmpty: true })));
    }
    parts.push(...lengthPrefixed(recipient));
    parts.push(encoder.encode(url.slice(SCHEMES[scheme]!.length)));
  } else {
    if (payload.url !== undefined || (payload.link_name !== undefined && payload.link_name !== null)) {
      throw new TypeError("tracking token: url and link_name belong to click tokens only");
    }
    parts.push(encoder.encode(recipient));
  }
  return concat([new Uint8Array([flags]), ...parts]);
}

function decodePayload(bytes: Uint8Array): TokenPayload | null {
  const reader = new Reader(bytes);
  const flags = reader.byte();
  if (flags & FLAG_RESERVED) return null;
  const kind = KINDS[flags & FLAG_KIND_MASK];
  if (kind === undefined) return null;
  const scheme = (flags & FLAG_SCHEME_MASK) >> FLAG_SCHEME_SHIFT;
  if (kind === "click" ? scheme === 0 || scheme >= SCHEMES.length : scheme !== 0 || flags & FLAG_LINK_NAME) {
    return null;
  }

  const issued = reader.take(4);
  const issuedAt = new DataView(issued.buffer, issued.byteOffset, 4).getUint32(0);
  const emailId = flags & FLAG_COMPACT_EMAIL_ID ? compactEmailId(reader.take(16)) : reader.text();
  const accountId = reader.text();
  const topic = flags & FLAG_TOPIC ? reader.text() : null;
  if (emailId === "" || accountId === "" || (topic !== null && !TOPIC_PATTERN.test(topic))) return null;

  if (kind === "click") {
    const linkName = flags & FLAG_LINK_NAME ? reader.text() : null;
    const recipient = reader.text();
    const rest = reader.rest();
    if (recipient === "" || rest === "") return null;
    return {
      kind,
      account_id: accountId,
      email_id: emailId,
      recipient,
      topic,
      issued_at: issuedAt,
      url: SCHEMES[scheme] + rest,
      link_name: linkName,
    };
  }
  const recipient = reader.rest();
  if (recipient === "") return null;
  return { kind, account_id: accountId, email_id: emailId, recipient, topic, issued_at: issuedAt };
}

function requireText(field: string, value: unknown, options: { allowEmpty?: boolean } = {}): string {
  if (typeof value !== "string" || (value === "" && !options.allowEmpty)) {
    throw new TypeError(`tracking token: ${field} must be a non-empty string`);
  }
  if (LONE_SURROGATE.test(value)) {
    throw new TypeError(`tracking token: ${field} is not well-formed Unicode`);
  }
  return value;
}

function lengthPrefixed(text: string): Uint8Array[] {
  const bytes = encoder.encode(text);
  return [varint(bytes.length), bytes];
}

/** Unsigned LEB128. */
function varint(value: number): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  out.push(rest);
  return new Uint8Array(out);
}

class Reader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.offset >= this.bytes.length) throw new RangeError("truncated");
    return this.bytes[this.offset++]!;
  }

  take(length: number): Uint8Array {
    if (this.offset + length > this.bytes.length) throw new RangeError("truncated");
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  /** Minimal unsigned LEB128 of at most 3 bytes (lengths up to 2 MiB; tokens are far smaller). */
  varint(): number {
    let value = 0;
    for (let i = 0; i < 3; i++) {
      const byte = this.byte();
      value |= (byte & 0x7f) << (7 * i);
      if ((byte & 0x80) === 0) {
        if (i > 0 && byte === 0) throw new RangeError("non-minimal varint");
        return value;
      }
    }
    throw new RangeError("varint too long");
  }

  text(): string {
    return decoder.decode(this.take(this.varint()));
  }

  rest(): string {
    const out = decoder.decode(this.bytes.subarray(this.offset));
    this.offset = this.bytes.length;
    return out;
  }
}

function compactEmailId(bytes: Uint8Array): string {
  const hex = toHex(bytes);
  return `email_${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
