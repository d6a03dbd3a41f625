import { fromBase64url, toBase64url } from "./base64";

/**
 * Secrets at rest (SPEC §14: webhook signing secrets under SECRETS_KEY): AES-256-GCM with a random
 * 96-bit IV, stored as `enc1.<base64url(iv ‖ ciphertext ‖ tag)>`. The additional data binds a
 * sealed value to its row (`context`, e.g. the account and endpoint id), so a ciphertext copied
 * into another row does not open. A value without the prefix is a row written before encryption
 * (plaintext): `openSecret` returns it as it is, and whoever writes the row next seals it.
 */

const PREFIX = "enc1.";
const IV_BYTES = 12;

const keys = new WeakMap<Uint8Array, Promise<CryptoKey>>();

function aesKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  let key = keys.get(raw);
  if (!key) {
    key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    keys.set(raw, key);
  }
  return key;
}

export function isSealed(stored: string): boolean {
  return stored.startsWith(PREFIX);
}

export async function sealSecret(
  key: Uint8Array<ArrayBuffer>,
  context: string,
  plaintext: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(context) },
    await aesKey(key),
    new TextEncoder().encode(plaintext),
  );
  const out = new Uint8Array(IV_BYTES + sealed.byteLength);
  out.set(iv);
  out.set(new Uint8Array(sealed), IV_BYTES);
  return PREFIX + toBase64url(out);
}

/** The plaintext of a stored value (sealed, or a plaintext row from before encryption). Throws when it does not open. */
export async function openSecret(
  key: Uint8Array<ArrayBuffer>,
  context: string,
  stored: string,
): Promise<string> {
  if (!isSealed(stored)) return stored;
  const bytes = fromBase64url(stored.slice(PREFIX.length));
  if (bytes === null || bytes.length <= IV_BYTES) throw new Error("a sealed secret is malformed");
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: bytes.slice(0, IV_BYTES), additionalData: new TextEncoder().encode(context) },
    await aesKey(key),
    bytes.slice(IV_BYTES),
  );
  return new TextDecoder().decode(plain);
}
