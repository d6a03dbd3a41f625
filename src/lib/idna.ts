/**
 * One spelling per mailbox domain: the ASCII (punycode) form. SES reports `user@xn--bcher-kva.example`
 * for a mailbox at `bücher.example`; a customer may type either. Suppressions, their KV mirror and
 * events store the ASCII form so both spellings are one address. The URL parser does the IDNA
 * mapping (UTS #46: case folding, then punycode), as browsers do.
 */
const NON_ASCII = /[^\p{ASCII}]/u;

/** The domain in ASCII form, lowercased; null when it is not a valid hostname. */
export function asciiDomain(domain: string): string | null {
  if (!NON_ASCII.test(domain)) return domain.toLowerCase();
  try {
    const host = new URL(`http://${domain}/`).hostname;
    return host === "" || NON_ASCII.test(host) ? null : host;
  } catch {
    return null;
  }
}

/** The address with its domain in ASCII form and lowercased (the local part only lowercased). */
export function canonicalAddress(address: string): string {
  const lower = address.toLowerCase();
  const at = lower.lastIndexOf("@");
  if (at < 0 || !NON_ASCII.test(lower.slice(at + 1))) return lower;
  const domain = asciiDomain(lower.slice(at + 1));
  return domain === null ? lower : `${lower.slice(0, at)}@${domain}`;
}
