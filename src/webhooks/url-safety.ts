/**
 * Which URLs a webhook may be delivered to (SPEC §14): https to a public host, no credentials.
 * `allowInsecure` (WEBHOOK_ALLOW_INSECURE_URLS=true, local development) also allows http and
 * loopback or private hosts, never credentials. Checked when an endpoint is created or changed
 * and again before every attempt, so a URL is never fetched unchecked.
 *
 * IP literals are judged after WHATWG URL parsing, which already turns the decimal, hex, octal and
 * shortened IPv4 forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) into dotted quads and
 * compresses IPv6. A name that resolves to a private address cannot be judged in general (Workers
 * have no DNS API), but the ones that say so are refused: the wildcard-DNS services that resolve a
 * name to the address written in it (`127.0.0.1.nip.io`, `10-0-0-1.sslip.io`, `7f000001.nip.io`),
 * names fixed to loopback (`localtest.me`, `lvh.me`), DNS-rebinding services, and any name whose
 * labels spell a non-public IPv4 address. Beyond that, fetches leave through Cloudflare's public
 * Internet only (`global_fetch_strictly_public` in wrangler.toml).
 *
 * Ports: https on 443 only, so a tenant cannot make mailtrail knock on `:22` or `:6379` of a public
 * host; with WEBHOOK_ALLOW_INSECURE_URLS any scheme (http, https) and port.
 */

export type UrlVerdict = { ok: true; url: string } | { ok: false; reason: string };

export function checkWebhookUrl(input: string, allowInsecure: boolean): UrlVerdict {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return { ok: false, reason: "url must be an absolute URL" };
  }
  if (url.username !== "" || url.password !== "") {
    return { ok: false, reason: "url must not carry credentials" };
  }
  if (url.protocol !== "https:" && !(allowInsecure && url.protocol === "http:")) {
    return { ok: false, reason: allowInsecure ? "url must be http or https" : "url must use https" };
  }
  if (url.hash !== "") return { ok: false, reason: "url must not have a fragment" };
  // WHATWG URL drops the scheme's default port, so an https URL on 443 has port "".
  if (!allowInsecure && url.port !== "") return { ok: false, reason: "url must use port 443" };
  if (!allowInsecure) {
    const why = nonPublicHost(url.hostname);
    if (why !== null) return { ok: false, reason: `url must point to a public host (${why})` };
  }
  return { ok: true, url: url.href };
}

/** Why a hostname (as URL gives it) is not a public host, or null when it is. */
export function nonPublicHost(hostname: string): string | null {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host.startsWith("[")) {
    const v6 = parseIpv6(host.slice(1, -1));
    if (v6 === null) return "not an IPv6 address";
    return nonPublicIpv6(v6);
  }
  const v4 = parseDottedIpv4(host);
  if (v4 !== null) return nonPublicIpv4(v4);
  if (host === "" || !host.includes(".")) return "a single-label name";
  if (
    /(^|\.)(localhost|local|localdomain|internal|intranet|lan|home\.arpa|test|invalid|example)$/.test(host)
  ) {
    return "a reserved or local name";
  }
  return nameResolvingPrivately(host);
}

/** Wildcard-DNS services: a name under them resolves to the IPv4 address its labels spell. */
const WILDCARD_IP_DOMAINS =
  /(^|\.)(nip\.io|sslip\.io|xip\.io|nip\.direct|traefik\.me|backname\.io|ip\.addr\.tools|localh\.st)$/;
/** Names that resolve to loopback by design, and DNS-rebinding services (they answer what the name asks for). */
const LOOPBACK_OR_REBINDING_DOMAINS =
  /(^|\.)(localtest\.me|lvh\.me|vcap\.me|fuf\.me|lacolhost\.com|localhost\.direct|readme\.localtest\.me|1u\.ms|rbndr\.us|rebind\.network|lock\.cmpxchg8b\.com)$/;

/**
 * Why a DNS name is known to resolve to a non-public address, or null. Detects dotted
 * (`a.b.c.d.`), dashed (`a-b-c-d`, also as a label's suffix `app-10-0-0-1`) and 8-hex-digit
 * (`0a000001`) IPv4 spellings among its labels.
 */
function nameResolvingPrivately(host: string): string | null {
  if (LOOPBACK_OR_REBINDING_DOMAINS.test(host)) return "a name that resolves to loopback or rebinds";
  const labels = host.split(".");
  const candidates: number[][] = [];
  for (let i = 0; i + 4 <= labels.length; i++) {
    const quad = parseDottedIpv4(labels.slice(i, i + 4).join("."));
    if (quad) candidates.push(quad);
  }
  const wildcard = WILDCARD_IP_DOMAINS.test(host);
  for (const label of labels) {
    const dashed = /(?:^|-)(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})$/.exec(label);
    if (dashed) {
      const parts = dashed.slice(1).map(Number);
      if (parts.every((p) => p <= 255)) candidates.push(parts);
    }
    const hex = /(?:^|-)([0-9a-f]{8})$/.exec(label);
    if (hex && wildcard) {
      const n = Number.parseInt(hex[1] ?? "", 16);
      candidates.push([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    }
  }
  for (const quad of candidates) {
    const why = nonPublicIpv4(quad);
    if (why !== null) return `a name that resolves to a ${why} address`;
  }
  // Under a wildcard service without a recognisable address: where it points cannot be told.
  if (wildcard && candidates.length === 0) return "a wildcard-DNS name whose address cannot be checked";
  return null;
}

function parseDottedIpv4(host: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

/** Special-purpose IPv4 ranges (IANA registry), as [first octets, prefix length, name]. */
const V4_BLOCKS: [number[], number, string][] = [
  [[0], 8, "this network"],
  [[10], 8, "private"],
  [[100, 64], 10, "carrier-grade NAT"],
  [[127], 8, "loopback"],
  [[169, 254], 16, "link-local or metadata"],
  [[172, 16], 12, "private"],
  [[192, 0, 0], 24, "IETF protocol assignments"],
  [[192, 0, 2], 24, "documentation"],
  [[192, 88, 99], 24, "6to4 relay"],
  [[192, 168], 16, "private"],
  [[198, 18], 15, "benchmarking"],
  [[198, 51, 100], 24, "documentation"],
  [[203, 0, 113], 24, "documentation"],
  [[224], 4, "multicast"],
  [[240], 4, "reserved"],
];

function ipv4ToInt(parts: number[]): number {
  return (
    ((parts[0] ?? 0) * 2 ** 24 + (parts[1] ?? 0) * 2 ** 16 + (parts[2] ?? 0) * 2 ** 8 + (parts[3] ?? 0)) >>> 0
  );
}

export function nonPublicIpv4(parts: number[]): string | null {
  const value = ipv4ToInt(parts);
  for (const [prefix, bits, name] of V4_BLOCKS) {
    const base = ipv4ToInt([...prefix, 0, 0, 0, 0].slice(0, 4));
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if ((value & mask) >>> 0 === (base & mask) >>> 0) return name;
  }
  return null;
}

/**
 * Eight 16-bit groups, or null. URL has already validated the literal and serialized it in its
 * canonical form: lowercase hex, `::` for the longest run of zeros, no embedded dotted quad.
 */
function parseIpv6(text: string): number[] | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16)));
  const left = groups(halves[0] ?? "");
  const right = halves.length === 2 ? groups(halves[1] ?? "") : [];
  const fill = halves.length === 2 ? 8 - left.length - right.length : 0;
  const all = [...left, ...new Array<number>(Math.max(0, fill)).fill(0), ...right];
  return all.length === 8 && all.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? all : null;
}

export function nonPublicIpv6(g: number[]): string | null {
  const [a = 0, b = 0] = g;
  if (g.every((x) => x === 0)) return "unspecified";
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback";
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0))
    return "IPv4-mapped or -compatible";
  if (a === 0x64 && b === 0xff9b) return "NAT64";
  if (a === 0x100 && g.slice(1, 4).every((x) => x === 0)) return "discard-only";
  if (a === 0x2001 && b < 0x200) return "IETF special purpose (Teredo, ORCHID, benchmarking)";
  if (a === 0x2001 && b === 0xdb8) return "documentation";
  if (a === 0x2002) return "6to4";
  if ((a & 0xfe00) === 0xfc00) return "unique local";
  if ((a & 0xffc0) === 0xfe80) return "link-local";
  if ((a & 0xffc0) === 0xfec0) return "site-local";
  if ((a & 0xff00) === 0xff00) return "multicast";
  if ((a & 0xe000) !== 0x2000) return "not global unicast";
  return null;
}
