import { config } from "../config";
import type { Env } from "../env";
import { toHex } from "../lib/ids";

/**
 * The HMAC that stands for an erased address (SPEC §20): lowercase hex HMAC-SHA256 of the address,
 * keyed with the 32 bytes ERASURE_KEY encodes. The address is the one the suppression list keys on
 * (lowercased, its domain in ASCII: suppressions/address.ts), so every spelling of one address has
 * one hash. A keyed hash, not a plain one: without the key nobody can test a guessed address
 * against the stored hashes.
 */

const keys = new WeakMap<object, Promise<CryptoKey>>();

function hmacKey(env: Env): Promise<CryptoKey> {
  let key = keys.get(env);
  if (!key) {
    const raw = config(env, "ERASURE_KEY");
    key = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(env, key);
  }
  return key;
}

/** The address's hash; `500 configuration_error` naming ERASURE_KEY when it is missing or malformed. */
export async function erasureHash(env: Env, email: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(env), new TextEncoder().encode(email));
  return toHex(new Uint8Array(mac));
}

/**
 * Hashes for lookups that must also work where erasure was never configured (check, compatibility
 * routes): null for every address when ERASURE_KEY is unset, since no hashed entry can exist then.
 */
export async function erasureHashes(env: Env, emails: string[]): Promise<(string | null)[]> {
  if (env.ERASURE_KEY === undefined || env.ERASURE_KEY.trim() === "") return emails.map(() => null);
  return Promise.all(emails.map((email) => erasureHash(env, email)));
}
