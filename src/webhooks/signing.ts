import { toHex } from "../lib/ids";

/**
 * Standard Webhooks signatures (standardwebhooks.com): `v1,` + base64 HMAC-SHA256 over
 * `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of the secret
 * after `whsec_`. During a rotation the header carries one signature per secret, space-separated,
 * which the Standard Webhooks libraries accept when any one of them verifies.
 */

export const SECRET_PREFIX = "whsec_";

/** `whsec_` + base64 of 32 random bytes. */
export function newSecret(): string {
  return SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

/** A random endpoint id: `whk_` + 96 random bits. */
export function newEndpointId(): string {
  return `whk_${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;
}

const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    const raw = fromBase64(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret);
    key = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    if (keyCache.size > 1000) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

/** The `webhook-signature` header value: one `v1,<base64>` per secret, space-separated. */
export async function signatureHeader(
  secrets: string[],
  id: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  const data = new TextEncoder().encode(`${id}.${timestampSeconds}.${body}`);
  const signatures = await Promise.all(
    secrets.map(async (secret) => {
      const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), data);
      return `v1,${toBase64(new Uint8Array(mac))}`;
    }),
  );
  return signatures.join(" ");
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
}
