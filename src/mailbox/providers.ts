/**
 * The receiving mailbox provider of a recipient (SPEC §15 `mailbox_provider`): `google`,
 * `microsoft`, `yahoo`, `apple` or `other`. Pure: every rule is a table row naming its source.
 *
 * Two ways to know it:
 * - the recipient's domain, for the providers' own consumer domains (`providerOfDomain`);
 * - for every other domain (a company's own domain hosted at Google Workspace or Microsoft 365),
 *   what SES reports of the receiving server on a delivery or a bounce: the SMTP response (a
 *   delivery's `smtpResponse`, a bounce's `diagnosticCode`), `remoteMtaIp` and `reportingMTA`
 *   (`providerOfServer`). The consumer remembers the answer per recipient domain
 *   (db/mailbox-domains.ts), and metrics attribute every rollup row of that domain by it.
 */

export const MAILBOX_PROVIDERS = ["google", "microsoft", "yahoo", "apple", "other"] as const;
export type MailboxProvider = (typeof MAILBOX_PROVIDERS)[number];
export type KnownProvider = Exclude<MailboxProvider, "other">;

interface DomainRule {
  provider: KnownProvider;
  /** Exact domains. */
  domains?: readonly string[];
  /** A first label under any country suffix (`hotmail` matches hotmail.com, hotmail.co.uk, hotmail.fr). */
  brands?: readonly string[];
  source: string;
}

/** Consumer domains, checked in order. */
export const DOMAIN_RULES: readonly DomainRule[] = [
  {
    provider: "google",
    domains: ["gmail.com", "googlemail.com"],
    source: "Gmail's own addresses (googlemail.com is its former name in Germany and the UK)",
  },
  {
    provider: "microsoft",
    domains: ["msn.com", "passport.com", "windowslive.com"],
    brands: ["outlook", "hotmail", "live"],
    source:
      "Outlook.com consumer domains (Microsoft: 'Add your other email accounts to Outlook.com', outlook.com, hotmail.*, live.*, msn.com)",
  },
  {
    provider: "yahoo",
    domains: [
      "ymail.com",
      "rocketmail.com",
      "aol.com",
      "aim.com",
      "love.com",
      "ygm.com",
      "games.com",
      "wow.com",
    ],
    brands: ["yahoo", "aol"],
    source: "Yahoo Mail and AOL Mail domains (both run by Yahoo Inc.; senders.yahooinc.com)",
  },
  {
    provider: "apple",
    domains: ["icloud.com", "me.com", "mac.com"],
    source: "iCloud Mail domains (Apple: 'About iCloud Mail email addresses', icloud.com, me.com, mac.com)",
  },
];

/**
 * Domains that look like a brand above but belong to someone else: Yahoo! JAPAN is LY Corporation's
 * own service, not Yahoo Inc.'s, and `live.*` is also a country-code suffix pattern for unrelated sites.
 */
const NOT_CONSUMER = new Set(["yahoo.co.jp", "yahoo.ne.jp"]);

/** Country suffixes a brand may take: com, fr, co.uk, com.br… (one or two short labels). */
const SUFFIX = /^(?:[a-z]{2,3}|(?:co|com|net|org)\.[a-z]{2})$/;

/** The provider of a consumer domain, or null for any other domain. */
export function providerOfDomain(domain: string): KnownProvider | null {
  const d = domain.trim().toLowerCase().replace(/\.$/, "");
  if (NOT_CONSUMER.has(d)) return null;
  const dot = d.indexOf(".");
  const brand = dot < 0 ? d : d.slice(0, dot);
  const suffix = dot < 0 ? "" : d.slice(dot + 1);
  for (const rule of DOMAIN_RULES) {
    if (rule.domains?.includes(d)) return rule.provider;
    if (rule.brands?.includes(brand) && SUFFIX.test(suffix)) return rule.provider;
  }
  return null;
}

interface TextSignature {
  provider: KnownProvider;
  /** Tested case-insensitively against the SMTP response and the reporting MTA. */
  pattern: RegExp;
  source: string;
}

/** What the receiving server says of itself, in SMTP replies and MTA names. */
export const SERVER_SIGNATURES: readonly TextSignature[] = [
  {
    provider: "google",
    pattern: /[\s-]gsmtp\b/i,
    source:
      "Google Workspace Admin Help, 'SMTP error reference' (support.google.com/a/answer/3726730): every reply of Google's MX ends with '- gsmtp'",
  },
  {
    provider: "google",
    pattern: /support\.google\.com\/(mail|a)\b/i,
    source:
      "Google's bounce texts link to support.google.com/mail (the real SES bounce in fixtures/ses/event-publishing/bounce-transient.json)",
  },
  {
    provider: "google",
    pattern: /\b(aspmx\.l\.google\.com|mx\.google\.com|google\.com\s+ESMTP)\b/i,
    source: "Google's MX host names (aspmx.l.google.com, mx.google.com)",
  },
  {
    provider: "microsoft",
    pattern:
      /\.(prod\.outlook\.com|protection\.outlook\.com|outlook\.office365\.com)\b|\[InternalId=\d+, Hostname=/i,
    source:
      "Exchange Online replies name the answering server ([Hostname=….PROD.OUTLOOK.COM], ….prod.protection.outlook.com); Microsoft Learn, 'Email non-delivery reports and SMTP errors in Exchange Online'",
  },
  {
    provider: "yahoo",
    pattern: /\byahoodns\.net\b|\bpostmaster\.yahoo(inc)?\.com\b|senders\.yahooinc\.com|\[TSS?\d{2}\]/i,
    source:
      "Yahoo Sender Hub, 'SMTP error codes' (senders.yahooinc.com/smtp-error-codes): MX hosts mta*.am0.yahoodns.net, replies tagged [TS01]…[TSS04]",
  },
  {
    provider: "apple",
    pattern: /\bmail\.icloud\.com\b|support\.apple\.com\/(en-us\/)?(HT204137|102322)|\[(CS|HM)\d{2}\]/i,
    source:
      "Apple, 'iCloud Mail postmaster information' (support.apple.com/102322): MX mx01.mail.icloud.com, replies tagged [CS01]/[HM08] linking HT204137",
  },
];

interface IpRange {
  provider: KnownProvider;
  cidr: string;
  source: string;
}

const GOOGLE_NETBLOCKS = "Google's published mail netblocks (_spf.google.com / _netblocks.google.com)";
const EOP = "Microsoft 365 URLs and IP address ranges, Exchange Online Protection (ID 9/10)";

/** Receiving servers' addresses (`remoteMtaIp`), IPv4. */
export const IP_RANGES: readonly IpRange[] = [
  { provider: "google", cidr: "64.233.160.0/19", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "66.102.0.0/20", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "74.125.0.0/16", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "108.177.0.0/17", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "142.250.0.0/15", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "172.217.0.0/19", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "173.194.0.0/16", source: GOOGLE_NETBLOCKS },
  { provider: "google", cidr: "209.85.128.0/17", source: GOOGLE_NETBLOCKS },
  { provider: "microsoft", cidr: "40.92.0.0/15", source: EOP },
  { provider: "microsoft", cidr: "40.107.0.0/16", source: EOP },
  { provider: "microsoft", cidr: "52.100.0.0/14", source: EOP },
  { provider: "microsoft", cidr: "104.47.0.0/17", source: EOP },
];

function ipv4(ip: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip.trim());
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

function inRange(ip: number, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const b = ipv4(base ?? "");
  const n = Number(bits);
  if (b === null) return false;
  const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
  return (ip & mask) >>> 0 === (b & mask) >>> 0;
}

export interface ServerReport {
  /** A delivery's smtpResponse or a bounce's diagnosticCode. */
  smtpResponse?: string | null;
  remoteMtaIp?: string | null;
  reportingMTA?: string | null;
}

/**
 * The provider that runs the receiving server, from what SES reports of it, or null when nothing
 * names one (most servers, and SES's own reportingMTA, `….amazonses.com`). The SMTP text comes first
 * (the server's own words), then its address.
 */
export function providerOfServer(report: ServerReport): KnownProvider | null {
  for (const text of [report.smtpResponse, report.reportingMTA]) {
    if (!text) continue;
    for (const s of SERVER_SIGNATURES) if (s.pattern.test(text)) return s.provider;
  }
  const ip = report.remoteMtaIp ? ipv4(report.remoteMtaIp) : null;
  if (ip !== null) for (const r of IP_RANGES) if (inRange(ip, r.cidr)) return r.provider;
  return null;
}

/**
 * Providers that send no per-message complaints to SES (SPEC §19): Gmail reports spam rates only in
 * aggregate (Postmaster Tools), so a complaint rate for it would be a false 0.
 */
export const NO_COMPLAINT_FEEDBACK: ReadonlySet<MailboxProvider> = new Set(["google"]);

/**
 * The SQL expression for the provider of a consumer domain (`NULL` for any other), generated from
 * DOMAIN_RULES so that SQL and TypeScript agree. `column` holds a lowercased domain.
 */
export function consumerProviderSql(column: string): string {
  const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const arms = [`WHEN ${column} IN (${[...NOT_CONSUMER].map(q).join(", ")}) THEN NULL`];
  for (const rule of DOMAIN_RULES) {
    const conds: string[] = [];
    if (rule.domains?.length) conds.push(`${column} IN (${rule.domains.map(q).join(", ")})`);
    for (const brand of rule.brands ?? []) {
      // brand.xx, brand.xxx, brand.co.xx, brand.com.xx… as SUFFIX above.
      const globs = [
        "[a-z][a-z]",
        "[a-z][a-z][a-z]",
        ...["co", "com", "net", "org"].map((s) => `${s}.[a-z][a-z]`),
      ];
      conds.push(globs.map((g) => `${column} GLOB ${q(`${brand}.${g}`)}`).join(" OR "));
    }
    arms.push(`WHEN ${conds.join(" OR ")} THEN ${q(rule.provider)}`);
  }
  return `(CASE ${arms.join(" ")} ELSE NULL END)`;
}
