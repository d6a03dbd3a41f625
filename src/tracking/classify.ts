/**
 * The machine-traffic classifier of SPEC §5: decides, for one pixel fetch or click, whether it is
 * recorded as a person (`bot: null`), recorded as a mailbox image proxy (`bot: {kind: "proxy"}`), or
 * dropped as a scanner, prefetcher or crawler. Pure: the routes pass in what the request says.
 *
 * Rules run in this order; the first that matches decides.
 *   1. Any method but GET is dropped (HEAD is how prefetchers probe links), and so is a request that
 *      says it is a prefetch (`Sec-Purpose`, `Purpose`, `X-Moz`, `X-Purpose`).
 *   2. A request from a mail-security vendor's own network is dropped.
 *   3. A known image-proxy user agent is recorded as that proxy; on a link, the two that are
 *      previews rather than proxies (Apple's bare agent, Yahoo Link Preview) are dropped.
 *   4. A missing user agent is dropped.
 *   5. A known link scanner or previewer user agent is dropped.
 *   6. A known mail client (desktop or mobile) is a person: it fetches images for the reader.
 *      This runs before the crawler list because isbot flags some of them.
 *   7. A user agent on isbot's maintained crawler list is dropped.
 *   8. Microsoft's network: an open is Outlook.com's image proxy; a click soon after the token was
 *      issued is a Safe Links / Defender detonation and is dropped.
 *   9. Everything else is a person.
 *
 * Timing is only ever a second signal (rule 8 needs Microsoft's network too): a person may click a
 * password-reset link seconds after it was sent.
 *
 * Fixture files cited below are in the shared fixtures (`fixtures/user-agents/`, sources in
 * `fixtures/SOURCES.md`).
 */
import { isbot, isbotMatch } from "isbot";
import type { Bot } from "../events/record";

export interface InteractionInput {
  kind: "open" | "click";
  method: string;
  userAgent: string | null;
  /** `request.cf.asn` */
  asn?: number | null;
  /** `request.cf.asOrganization` */
  asOrganization?: string | null;
  /** `request.cf.country`; accepted for completeness, no rule uses it (a country says nothing about automation). */
  country?: string | null;
  /** Seconds between the token's issue and this request; clicks only. */
  secondsSinceIssued?: number | null;
  /** The request's declared purpose, from its prefetch headers (see prefetchPurpose). */
  purpose?: string | null;
}

export type Classification = { action: "record"; bot: Bot | null } | { action: "drop"; reason: string };

/**
 * A click from Microsoft's network this soon after the token was issued is Defender's delivery-time
 * detonation: gophish#2115 ("clicked almost immediately upon receival"), resend-node#901 (+12 s).
 * Later clicks from Microsoft's network are kept: Windows 365 / Azure Virtual Desktop users browse
 * from it, and Safe Links' time-of-click check redirects the person's own browser rather than
 * proxying it (warmbly#412, quoting Microsoft's Safe Links documentation).
 */
export const SCANNER_CLICK_WINDOW_SECONDS = 300;

/** Mailbox image proxies, recorded as `{kind: "proxy", source}`. */
const IMAGE_PROXIES: readonly { source: string; pattern: RegExp; clickIsPrefetch?: true }[] = [
  // Gmail: gmail-image-proxy.txt (isbot crawlers, matomo bots, uap-core tests).
  { source: "google", pattern: /GoogleImageProxy|\bvia ggpht\.com\b/i },
  // Yahoo and AOL: yahoo-mail-proxy.txt 1-2 (help.yahoo.com SLN28749, senders.yahooinc.com/mail-proxy-servers).
  { source: "yahoo", pattern: /\bYahooMailProxy\b/i },
  // Yahoo Link Preview: yahoo-mail-proxy.txt 3-4 (help.yahoo.com SLN23615). Yahoo fetches it for the
  // reader, so an open counts as Yahoo's proxy; but on a link it is a preview, not a click.
  { source: "yahoo", pattern: /\bYahoo Link Preview\b/i, clickIsPrefetch: true },
  // other-mail-image-proxies.txt 1-3 (matomo bots): Seznam.cz, Rambler, ukr.net.
  { source: "seznam", pattern: /\bSeznamEmailProxy\//i },
  { source: "rambler", pattern: /\bRamblerMail\/.*\bImageProxy\//i },
  { source: "ukrnet", pattern: /\bmail\.ukr\.net proxy\b|\bsecureurl\.fwdcdn\.com\b/i },
  // other-mail-image-proxies.txt 4 (isbot, monperrus list) and 5-6 (uap-core tests).
  { source: "fastmail", pattern: /^FastmailUA\//i },
  { source: "superhuman", pattern: /^Superhuman(?:[/\s]|$)/i },
  { source: "slack", pattern: /\bSlack-ImgProxy\b/i },
  // HEY: "The User-Agent always begins with the identifier hey.com/imageproxy" (https://www.hey.com/image-proxy).
  { source: "hey", pattern: /^hey\.com\/imageproxy\b/i },
];

/**
 * Apple Mail Privacy Protection fetches every image with exactly this user agent (uap-core#509,
 * apple-mail-privacy-protection.txt), from Apple's relay network (AS714) or its partners. No browser
 * sends it bare, so on a link it is a filter, not a person (mail-tracker#255 lists it among spam-filter agents).
 */
const APPLE_PRIVACY_PROXY_UA = "Mozilla/5.0";

/** Link scanners and previewers recognisable by user agent: dropped. link-scanners-prefetchers.txt. */
const LINK_SCANNERS: readonly { name: string; pattern: RegExp }[] = [
  // Line 3, mail-tracker#255: an Edge 12 string with a stray " Mozilla/5.0" appended, sent by
  // anti-virus / spam filters. Real browsers start with the Mozilla token; they never end with it.
  { name: "trailing-mozilla-token", pattern: /\S\s+Mozilla\/5\.0$/ },
  { name: "barracuda-sentinel", pattern: /\bBarracuda Sentinel\b/i }, // line 4 (matomo bots)
  // Lines 5-6 (isbot, user-agents.net): Office apps probing a link before opening it.
  { name: "microsoft-office-discovery", pattern: /\bMicrosoft Office (?:Existence|Protocol) Discovery\b/i },
  { name: "exchange-check", pattern: /\(Exchange check\)/i }, // line 7 (matomo bots)
  { name: "bing-preview", pattern: /\bBingPreview\//i }, // line 8 (matomo bots)
  { name: "microsoft-preview", pattern: /\bMicrosoftPreview\//i }, // line 9 (matomo bots)
  { name: "skype-preview", pattern: /\bSkypeUriPreview\b/i }, // line 10 (matomo bots)
  { name: "bluecoat", pattern: /\bBluecoat DRTR\b/i }, // line 11 (isbot, user-agents.net)
  { name: "slack-link-expanding", pattern: /\bSlackbot-LinkExpanding\b/i }, // line 12 (matomo bots)
];

/**
 * Mail clients that fetch images themselves: people (SPEC §5). Several are on isbot's list (eM
 * Client's bare "eMClient/…", "Yahoo%20Mail/…", "WindowsMail/…": isbot-classification.tsv), hence
 * this list runs first.
 */
const MAIL_CLIENTS: readonly RegExp[] = [
  // Outlook for Windows, Mac, iOS and Android; Windows Mail: outlook-office365.txt (matomo pim,
  // isbot browsers, uap-core tests).
  /\bMicrosoft Outlook\b/i,
  /\bms-office\b/i,
  /\bMSOffice \d/i,
  /^Microsoft Office\/\d/i,
  /^MacOutlook\//i,
  /\bOutlook-(?:iOS|Android)\b/i,
  /^WindowsMail\//i,
  // human-mail-clients.txt (isbot browsers, uap-core tests, matomo pim).
  /\bThunderbird\//i,
  /\beM ?Client\//i,
  /^Airmail\b/i,
  /\bMailbird\//i,
  /\bMailspring\//i,
  /\bBlueMail\//i,
  /^Android-Gmail\//i,
  /^Yahoo%20Mail\//i,
  /\bmailapp\/\d/i,
  // Apple Mail on macOS and iOS: a WebKit string with no browser token after it
  // (apple-mail-client.txt: go-useragent#10, uap-core#528, isbot browsers, the SES open example).
  /^Mozilla\/5\.0 \((?:Macintosh|iPhone|iPad|iPod)[^)]*\) AppleWebKit\/[\d.]+\+? \(KHTML, like Gecko\)(?: Mobile\/\w+)?$/,
];

/**
 * Networks run by mail-security gateways, which fetch every link and image of the mail they filter.
 * Only their own ASNs: a vendor's corporate network (Cisco's AS109) or a secure web gateway that
 * people browse through (Zscaler, Cisco Umbrella) would drop real people, so they are not here.
 *   Proofpoint: AS26211 originates the pphosted.com mail-filter ranges (148.163.144.0/21,
 *     205.220.160.0/21, …); AS22843 is Proofpoint's other ASN, listed beside it in public
 *     scanner-ASN lists.
 *   Mimecast: AS30031 originates 170.10.128.0/22, the us-smtp-delivery-*.mimecast.com relays.
 *   Barracuda: AS15324, ARIN NetRange 64.235.144.0/20, OrgName "Barracuda Networks, Inc.".
 *   Cisco IronPort (Secure Email Cloud Gateway, esa*.iphmx.com): AS16417 "Cisco Systems, IronPort Division".
 * SOURCES.md notes that these scanners send ordinary browser user agents (gophish#973/#2646,
 * mautic#16263, resend-node#901), so the network is the signal. Their regional ASNs carry the
 * vendor's name in `asOrganization`, which the patterns below catch.
 */
const SECURITY_GATEWAY_ASNS: ReadonlyMap<number, string> = new Map([
  [26211, "proofpoint"],
  [22843, "proofpoint"],
  [30031, "mimecast"],
  [15324, "barracuda"],
  [16417, "cisco-ironport"],
]);
const SECURITY_GATEWAY_ORGANISATIONS: readonly { name: string; pattern: RegExp }[] = [
  { name: "proofpoint", pattern: /\bproofpoint\b/i },
  { name: "mimecast", pattern: /\bmimecast\b/i },
  { name: "barracuda", pattern: /\bbarracuda\b/i },
  { name: "cisco-ironport", pattern: /\bironport\b/i },
];

/**
 * Microsoft's network: Exchange Online Protection and Defender scan from it (gophish#973 from
 * 40.107.218.12, gophish#2646 from 40.94.89.x, warmbly#410 seeing AS8075), and Outlook.com / Outlook
 * on the web load images through Microsoft's own proxy from it (warmbly#412). AS8074 and AS12076
 * are Microsoft's other ASNs named in warmbly#410.
 */
const MICROSOFT_ASNS: ReadonlySet<number> = new Set([8075, 8074, 12076]);
const MICROSOFT_ORGANISATION = /\bmicrosoft\b/i;

/**
 * A request made in anticipation, not because someone opened or clicked: SPEC §5 drops prefetchers.
 * `Sec-Purpose: prefetch` (Fetch standard; MDN "Sec-Purpose"; Chromium sends `prefetch`,
 * `prefetch;anonymous-client-ip` and `prefetch;prerender`), the legacy `Purpose: prefetch` (Chrome's
 * `<link rel=prefetch>`, per MDN browser-compat data), Firefox's older `X-Moz: prefetch`, and
 * Safari's `X-Purpose: preview` (Top Sites thumbnails).
 */
const PREFETCH_PURPOSE = /^\s*(?:prefetch|preview)\b/i;

/** The purpose a request declares in its prefetch headers, or null. */
export function prefetchPurpose(headers: Headers): string | null {
  return (
    headers.get("sec-purpose") ?? headers.get("purpose") ?? headers.get("x-moz") ?? headers.get("x-purpose")
  );
}

const PERSON: Classification = { action: "record", bot: null };

export function classifyInteraction(input: InteractionInput): Classification {
  const method = input.method.toUpperCase();
  if (method !== "GET") return drop(`method: ${method}`);
  if (input.purpose && PREFETCH_PURPOSE.test(input.purpose)) return drop(`prefetch: ${input.purpose}`);

  const gateway = securityGateway(input.asn, input.asOrganization);
  if (gateway) return drop(`security gateway: ${gateway}`);

  const ua = (input.userAgent ?? "").trim();
  if (ua === APPLE_PRIVACY_PROXY_UA) {
    return input.kind === "open" ? proxy("apple") : drop("bare user agent");
  }
  const imageProxy = IMAGE_PROXIES.find((rule) => rule.pattern.test(ua));
  if (imageProxy) {
    return input.kind === "click" && imageProxy.clickIsPrefetch
      ? drop(`link preview: ${imageProxy.source}`)
      : proxy(imageProxy.source);
  }

  // Every browser, mail client and image proxy sends a user agent; only scripts and scanners omit it.
  if (ua === "") return drop("missing user agent");

  const scanner = LINK_SCANNERS.find((rule) => rule.pattern.test(ua));
  if (scanner) return drop(`link scanner: ${scanner.name}`);

  if (MAIL_CLIENTS.some((pattern) => pattern.test(ua))) return PERSON;

  if (isbot(ua)) return drop(`crawler: ${isbotMatch(ua) ?? "isbot"}`);

  if (isMicrosoftNetwork(input.asn, input.asOrganization)) {
    if (input.kind === "open") return proxy("microsoft");
    const seconds = input.secondsSinceIssued;
    if (seconds !== null && seconds !== undefined && seconds <= SCANNER_CLICK_WINDOW_SECONDS) {
      return drop("microsoft safe links");
    }
  }

  return PERSON;
}

/** The label of a classification, as the fixtures and the benchmark name it: person, proxy:<source>, scanner. */
export function classificationLabel(result: Classification): string {
  if (result.action === "drop") return "scanner";
  return result.bot ? `proxy:${result.bot.source}` : "person";
}

function securityGateway(asn: number | null | undefined, organisation: string | null | undefined) {
  const byAsn = asn !== null && asn !== undefined ? SECURITY_GATEWAY_ASNS.get(asn) : undefined;
  if (byAsn) return byAsn;
  if (!organisation) return undefined;
  return SECURITY_GATEWAY_ORGANISATIONS.find((rule) => rule.pattern.test(organisation))?.name;
}

function isMicrosoftNetwork(
  asn: number | null | undefined,
  organisation: string | null | undefined,
): boolean {
  return (
    (asn !== null && asn !== undefined && MICROSOFT_ASNS.has(asn)) ||
    (!!organisation && MICROSOFT_ORGANISATION.test(organisation))
  );
}

function proxy(source: string): Classification {
  return { action: "record", bot: { kind: "proxy", source } };
}

function drop(reason: string): Classification {
  return { action: "drop", reason };
}
