/**
 * Instrumentation of an email's HTML (SPEC §6), with Workers' HTMLRewriter: every http(s) link
 * becomes a click URL, the open pixel goes before `</body>`, and the unsubscribe URL and headers
 * are issued. Each URL carries its own sealed token; nothing is stored.
 */
import { decodeHTMLAttribute } from "entities/decode";
import { validationError } from "../lib/errors";
import { sealToken, type TokenPayload, type TrackingKeyring } from "./token";

export interface InstrumentInput {
  html: string;
  /** Origin of the tracking URLs, without a trailing slash. */
  base: string;
  account_id: string;
  email_id: string;
  /** Lowercased. */
  recipient: string;
  topic: string | null;
  /** Epoch seconds, stamped into every token. */
  issued_at: number;
  opens: boolean;
  clicks: boolean;
  unsubscribe: boolean;
}

export interface Instrumented {
  html: string;
  pixel_url: string | null;
  unsubscribe_url: string | null;
  /** `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058), or empty without unsubscribe. */
  headers: Record<string, string>;
  links_tracked: number;
}

/**
 * A click token holds its URL. With this bound a token stays inside MAX_TOKEN_LENGTH whatever the
 * other fields hold (each at its own limit); 6 KB is far beyond any URL a mail client will follow.
 */
export const MAX_TRACKED_URL_BYTES = 6144;
const MAX_LINK_NAME = 256;
const MARKER_PREFIX = "data-mt-";

const encoder = new TextEncoder();

/**
 * The URL a browser would follow for an `href` attribute's source text, when it is absolute http(s).
 * HTMLRewriter hands attribute values over as written, character references included (`&amp;`), so
 * they are decoded here with the HTML rules for attributes (`&copy=3` in a query stays as it is).
 * Then, as browsers do, surrounding whitespace is trimmed and tabs and newlines dropped; everything
 * else (query, fragment, escapes) is kept byte for byte.
 */
export function trackableTarget(rawHref: string): string | null {
  const href = decodeHTMLAttribute(rawHref)
    .replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, "")
    .replace(/[\t\n\r]/g, "");
  return /^https?:\/\/[^/]/i.test(href) && URL.canParse(href) ? href : null;
}

function linkName(raw: string | null): string | null {
  if (raw === null) return null;
  const name = decodeHTMLAttribute(raw).trim().slice(0, MAX_LINK_NAME);
  return name === "" ? null : name;
}

export async function instrumentHtml(
  keyring: TrackingKeyring,
  input: InstrumentInput,
): Promise<Instrumented> {
  const identity = {
    account_id: input.account_id,
    email_id: input.email_id,
    recipient: input.recipient,
    topic: input.topic,
    issued_at: input.issued_at,
  } satisfies Omit<TokenPayload, "kind">;

  const pixelUrl = input.opens
    ? `${input.base}/o/${await sealToken(keyring, { kind: "open", ...identity })}`
    : null;
  const unsubscribeUrl = input.unsubscribe
    ? `${input.base}/u/${await sealToken(keyring, { kind: "unsubscribe", ...identity })}`
    : null;

  let linksTracked = 0;
  let tooLong: string | null = null;
  let pixelPlaced = false;
  const pixelTag =
    pixelUrl &&
    `<img src="${pixelUrl}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">`;
  const placePixel = (place: (html: string) => void) => {
    if (pixelTag === null || pixelPlaced) return;
    place(pixelTag);
    pixelPlaced = true;
  };

  const rewriter = new HTMLRewriter().on("a", {
    async element(el) {
      const notrack = el.hasAttribute(`${MARKER_PREFIX}notrack`);
      const name = linkName(el.getAttribute(`${MARKER_PREFIX}name`));
      // The markers are ours: they never reach the recipient.
      for (const [attribute = ""] of [...el.attributes]) {
        if (attribute.toLowerCase().startsWith(MARKER_PREFIX)) el.removeAttribute(attribute);
      }
      if (!input.clicks || notrack) return;
      const raw = el.getAttribute("href");
      const url = raw === null ? null : trackableTarget(raw);
      if (url === null) return;
      if (encoder.encode(url).length > MAX_TRACKED_URL_BYTES) {
        tooLong ??= url.slice(0, 80);
        return;
      }
      let token: string;
      try {
        token = await sealToken(keyring, { kind: "click", ...identity, url, link_name: name });
      } catch {
        tooLong ??= url.slice(0, 80); // over the token's size limit after all: refused the same way
        return;
      }
      el.setAttribute("href", `${input.base}/c/${token}`);
      linksTracked += 1;
    },
  });
  if (pixelTag !== null) {
    // Before `</body>`; failing that before `</html>`; failing that at the very end.
    rewriter
      .on("body", { element: (el) => el.onEndTag((end) => placePixel((h) => end.before(h, { html: true }))) })
      .on("html", { element: (el) => el.onEndTag((end) => placePixel((h) => end.before(h, { html: true }))) })
      .onDocument({ end: (end) => placePixel((h) => end.append(h, { html: true })) });
  }

  const html = await rewriter
    .transform(new Response(input.html, { headers: { "content-type": "text/html; charset=utf-8" } }))
    .text();
  if (tooLong !== null) {
    throw validationError(
      "html",
      `html: the link to ${tooLong}… is longer than ${MAX_TRACKED_URL_BYTES} bytes and cannot be tracked; ` +
        "shorten it or mark it data-mt-notrack",
    );
  }

  return {
    html,
    pixel_url: pixelUrl,
    unsubscribe_url: unsubscribeUrl,
    headers: unsubscribeUrl
      ? { "List-Unsubscribe": `<${unsubscribeUrl}>`, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click" }
      : {},
    links_tracked: linksTracked,
  };
}
