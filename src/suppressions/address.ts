import * as z from "zod";
import { asciiDomain } from "../lib/idna";

/**
 * Email address syntax for the suppression list: the dot-atom form of RFC 5321 that real mailboxes
 * use (no quoted local parts, comments or IP literals), internationalised characters allowed, and
 * lowercased: the list matches addresses case-insensitively, as providers do in practice. An
 * internationalised domain is stored in its ASCII (punycode) form, the one SES reports, so both
 * spellings of a domain are one address. An
 * address is at most 254 UTF-8 bytes (the SMTP path limit), which also keeps every mirror key
 * under KV's 512-byte key limit.
 */

const MAX_ADDRESS_BYTES = 254;
const LOCAL_PART = /^[^\s\p{Cc}@"(),:;<>[\]\\.]+(?:\.[^\s\p{Cc}@"(),:;<>[\]\\.]+)*$/u;
const LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

/** The lowercased address with an ASCII domain, or null when it is not a plausible mailbox address. */
export function normalizeEmail(input: string): string | null {
  const lowered = input.trim().toLowerCase();
  const at = lowered.lastIndexOf("@");
  if (at <= 0) return null;
  const local = lowered.slice(0, at);
  const labels = lowered.slice(at + 1).split(".");
  if (local.length > 64 || !LOCAL_PART.test(local)) return null;
  if (labels.length < 2 || !labels.every((label) => LABEL.test(label))) return null;
  // A top-level domain is never all digits: this refuses bare IPv4 addresses as domains.
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return null;
  const domain = asciiDomain(labels.join("."));
  if (domain === null) return null;
  const email = `${local}@${domain}`;
  return new TextEncoder().encode(email).length > MAX_ADDRESS_BYTES ? null : email;
}

export const INVALID_EMAIL = "must be an email address such as user@example.com";

/** A request field holding an address: validated and lowercased. */
export const emailAddressSchema = z
  .string()
  .transform((value, ctx) => {
    const email = normalizeEmail(value);
    if (email === null) {
      ctx.addIssue({ code: "custom", message: INVALID_EMAIL });
      return z.NEVER;
    }
    return email;
  })
  .meta({ format: "email" });

/** The SES mailbox simulator's domain: its addresses are recorded, never suppressed (SPEC §7 tests send there). */
const SIMULATOR_DOMAIN = "simulator.amazonses.com";

/** Whether an address is the SES mailbox simulator's. */
export const isSimulatorAddress = (address: string) => address.toLowerCase().endsWith(`@${SIMULATOR_DOMAIN}`);
