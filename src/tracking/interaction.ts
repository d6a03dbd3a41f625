import { blankEvent, type EventRecord, type Geo, type Tracking } from "../events/record";
import { canonicalAddress } from "../lib/idna";
import { DAY_MS } from "../lib/params";
import type { EventMessage } from "../pipeline/messages";
import { networkOf } from "./bursts";
import { type Classification, classifyInteraction, prefetchPurpose } from "./classify";
import type { TokenPayload } from "./token";

/** What a tracking request says about who sent it: headers and Cloudflare's `request.cf`. */
export interface RequestSignals {
  method: string;
  userAgent: string | null;
  ipAddress: string | null;
  asn: number | null;
  asOrganization: string | null;
  geo: Geo | null;
  /** A prefetch header's value (prefetchPurpose), or null for an ordinary request. */
  purpose: string | null;
}

/** Longer user agents are junk or abuse; a bound keeps every event row small. */
const MAX_USER_AGENT = 1024;

export function readSignals(request: Request): RequestSignals {
  const cf = (request.cf ?? {}) as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : null);
  const country = text(cf.country);
  const region = text(cf.region);
  const city = text(cf.city);
  return {
    method: request.method,
    userAgent: text(request.headers.get("user-agent")?.trim().slice(0, MAX_USER_AGENT)),
    ipAddress: text(request.headers.get("cf-connecting-ip")),
    asn: typeof cf.asn === "number" ? cf.asn : null,
    asOrganization: text(cf.asOrganization),
    geo: country || region || city ? { country, region, city } : null,
    purpose: prefetchPurpose(request.headers),
  };
}

/** Classifies one open or click (SPEC §5); the click's timing is measured from the token's issue. */
export function classifyRequest(payload: TokenPayload, signals: RequestSignals, now: number): Classification {
  return classifyInteraction({
    kind: payload.kind === "click" ? "click" : "open",
    method: signals.method,
    userAgent: signals.userAgent,
    asn: signals.asn,
    asOrganization: signals.asOrganization,
    country: signals.geo?.country ?? null,
    purpose: signals.purpose,
    secondsSinceIssued:
      payload.kind === "click" ? Math.max(0, Math.floor(now / 1000) - payload.issued_at) : null,
  });
}

/**
 * The queue message of an open or click that classified as recorded. Only what the token and the
 * request know is set; the consumer fills the other dimensions from the message's registration.
 */
export function engagementMessage(
  payload: TokenPayload,
  signals: RequestSignals,
  bot: Tracking["bot"],
  now: number,
  nonce: string,
): EventMessage {
  const click = payload.kind === "click";
  return {
    type: "event",
    ...(click ? { network: networkOf(signals.asn, signals.ipAddress) } : {}),
    event: {
      ...tokenEvent(payload, click ? "email.clicked" : "email.opened", now, nonce),
      tracking: {
        user_agent: signals.userAgent,
        ip_address: signals.ipAddress,
        url: click ? (payload.url ?? null) : null,
        link_name: click ? (payload.link_name ?? null) : null,
        geo: signals.geo,
        bot,
      },
    },
  };
}

/**
 * An unsubscribe: the event and its suppression, for the token's topic. A token without a topic
 * suppresses every topic (SPEC §5): the effect does not ask to inherit the registered message's
 * topic, which only SES Subscription records do.
 */
export function unsubscribeMessage(payload: TokenPayload, now: number, nonce: string): EventMessage {
  return {
    type: "event",
    event: tokenEvent(payload, "email.unsubscribed", now, nonce),
    suppress: { reason: "unsubscribe", topic: payload.topic },
  };
}

/**
 * Replay buckets of SPEC §5: a token records at most one event of its kind per bucket. Opens and
 * clicks are fetched again by anyone holding the link; mail providers retry one-click POSTs.
 */
export const REPLAY_BUCKET_MS = {
  "email.opened": 60_000,
  "email.clicked": 10_000,
  "email.unsubscribed": DAY_MS,
} as const;
type TokenEventType = keyof typeof REPLAY_BUCKET_MS;
const TYPE_CODE: Record<TokenEventType, string> = {
  "email.opened": "o",
  "email.clicked": "c",
  "email.unsubscribed": "u",
};

/**
 * The event id of a token's event: the token's nonce, the type and the time bucket, so every
 * request of one bucket names the same event. occurred_at stays the request time (SPEC §8), so the
 * events key alone would not collide; the consumer looks the id up in the email's index instead.
 */
export function replayEventId(nonce: string, type: TokenEventType, now: number): string {
  return `evt_${nonce}${TYPE_CODE[type]}${Math.floor(now / REPLAY_BUCKET_MS[type]).toString(36)}`;
}

/**
 * The time range a tracking event's replay id names (its bucket), or null for any other id. Used to
 * find a stored event by id without an index by id (webhook replay); a false match (a hash id that
 * happens to read the same way) only costs one empty key-range lookup.
 */
export function replayIdWindow(id: string): { start: number; end: number } | null {
  const m = /^evt_[0-9a-f]{24}([ocu])([0-9a-z]{1,12})$/.exec(id);
  if (!m) return null;
  const type = (Object.keys(TYPE_CODE) as TokenEventType[]).find((t) => TYPE_CODE[t] === m[1]);
  if (!type) return null;
  const ms = REPLAY_BUCKET_MS[type];
  const bucket = Number.parseInt(m[2] ?? "", 36);
  return Number.isSafeInteger(bucket * ms) ? { start: bucket * ms, end: (bucket + 1) * ms } : null;
}

function tokenEvent(payload: TokenPayload, type: TokenEventType, now: number, nonce: string): EventRecord {
  return {
    ...blankEvent({
      id: replayEventId(nonce, type, now),
      account_id: payload.account_id,
      type,
      occurred_at: now,
      email_id: payload.email_id,
      recipient: canonicalAddress(payload.recipient),
    }),
    topic: payload.topic,
  };
}
