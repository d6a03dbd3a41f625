/**
 * The tracking paths of SPEC §5: open pixel, click redirect, unsubscribe. They never read D1 or
 * KV: the token carries everything, and the write is one queue message. Opens and clicks send it
 * inside `waitUntil`, after the response; an unsubscribe awaits it, so its 200 means "recorded".
 */
import type { Context } from "hono";
import * as z from "zod";
import type { AppEnv } from "../app-env";
import { ApiError } from "../lib/errors";
import { describeError, log } from "../lib/log";
import { type App, notFoundError, route, unavailableError } from "../lib/openapi";
import type { EventMessage } from "../queue/messages";
import { enqueue } from "../queue/producer";
import { classifyRequest, engagementMessage, readSignals, unsubscribeMessage } from "./interaction";
import { trackingKeyring } from "./keyring";
import { invalidLinkPage, PAGE_HEADERS, tryAgainPage, unsubscribedPage, unsubscribePage } from "./pages";
import { openToken, type TokenKind, type TokenPayload } from "./token";

/** A 1×1 transparent GIF89a, 43 bytes. */
const PIXEL = new Uint8Array([
  0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00,
  0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
  0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
]);
const PIXEL_HEADERS = {
  "Content-Type": "image/gif",
  "Cache-Control": "no-store, no-cache, must-revalidate, private",
};

const tokenParam = z.object({
  token: z.string().meta({ description: "An opaque tracking token issued by POST /v1/messages/instrument" }),
});
const unsubscribedSchema = z.object({
  object: z.literal("unsubscribe"),
  unsubscribed: z.literal(true),
  topic: z.string().nullable(),
});
const htmlContent = (description: string) => ({
  description,
  content: { "text/html": { schema: z.string() } },
});

export function registerTrackingRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/o/{token}",
      summary: "Open pixel",
      description:
        "Always 200 with a 43-byte transparent GIF, whatever the token. A valid token records `email.opened` " +
        "unless the request classifies as a scanner; mailbox image proxies are recorded with `tracking.bot`.",
      tags: ["tracking"],
      request: { params: tokenParam },
      responses: {
        200: {
          description: "The pixel",
          content: { "image/gif": { schema: z.string().meta({ format: "binary" }) } },
        },
      },
    },
    (c) => {
      const token = c.req.param("token") ?? "";
      const signals = readSignals(c.req.raw);
      const now = Date.now();
      // Everything, the token's decryption included, happens after the GIF is on its way.
      recordInBackground(c, async () => {
        const payload = await openToken(await trackingKeyring(c.env), token, "open");
        if (!payload) return null;
        const verdict = classifyRequest(payload, signals, now);
        return verdict.action === "record" ? engagementMessage(payload, signals, verdict.bot, now) : null;
      });
      return new Response(PIXEL, { headers: PIXEL_HEADERS });
    },
  );

  const clickDescription =
    "A valid token answers 302 to its target and records `email.clicked` unless the request classifies as " +
    "a scanner (the redirect happens either way). An invalid or tampered token is 404 and never redirects. " +
    "HEAD answers the same redirect and records nothing.";
  route(
    app,
    {
      method: "get",
      path: "/c/{token}",
      summary: "Click redirect",
      description: clickDescription,
      tags: ["tracking"],
      request: { params: tokenParam },
      responses: {
        302: { description: "Redirect to the link's target (Location)" },
        ...notFoundError,
      },
    },
    async (c) => {
      const now = Date.now();
      const payload = await openTracking(c, "click");
      // openToken only yields http(s) URLs; checked again because a redirect is the one thing that must be safe.
      if (!payload?.url || !/^https?:\/\//i.test(payload.url)) {
        throw new ApiError("not_found", "this link is not valid");
      }
      const signals = readSignals(c.req.raw);
      const verdict = classifyRequest(payload, signals, now);
      if (verdict.action === "record") {
        const message = engagementMessage(payload, signals, verdict.bot, now);
        recordInBackground(c, async () => message);
      }
      return new Response(null, {
        status: 302,
        headers: {
          Location: locationHeader(payload.url),
          "Cache-Control": "no-store",
          // The token stays with us: the target sees no Referer from the click URL.
          "Referrer-Policy": "no-referrer",
        },
      });
    },
  );
  // Hono answers HEAD with the GET handler (method HEAD, which the classifier drops); documented here.
  app.openAPIRegistry.registerPath({
    method: "head",
    path: "/c/{token}",
    summary: "Click redirect, probed",
    description: "The same answer as GET; records nothing (link scanners probe with HEAD).",
    tags: ["tracking"],
    request: { params: tokenParam },
    responses: { 302: { description: "Redirect to the link's target" }, ...notFoundError },
  });

  route(
    app,
    {
      method: "get",
      path: "/u/{token}",
      summary: "Unsubscribe page",
      description:
        "A small page with one button that POSTs back. Records nothing: scanners fetch every link. " +
        "An invalid token is 404 (an HTML page for browsers, the JSON error otherwise).",
      tags: ["tracking"],
      request: { params: tokenParam },
      responses: {
        200: htmlContent("The page"),
        404: { description: "not_found: the token is not valid" },
      },
    },
    async (c) => {
      const payload = await openTracking(c, "unsubscribe");
      if (!payload) return invalidUnsubscribe(c);
      return c.body(unsubscribePage(c.req.param("token") ?? "", payload.topic), 200, PAGE_HEADERS);
    },
  );

  route(
    app,
    {
      method: "post",
      path: "/u/{token}",
      summary: "Unsubscribe (RFC 8058 one-click, or the page's button)",
      description:
        "Answers 200 once the queue accepted the work; records `email.unsubscribed` and suppresses the address " +
        "for the token's topic (every topic when it has none) with reason `unsubscribe`. Browsers get a " +
        "confirmation page, other clients JSON. 503 when the queue fails: retry.",
      tags: ["tracking"],
      request: {
        params: tokenParam,
        body: {
          content: {
            "application/x-www-form-urlencoded": {
              schema: z.object({ "List-Unsubscribe": z.literal("One-Click") }),
            },
          },
          required: false,
        },
      },
      responses: {
        200: {
          description: "Unsubscribed",
          content: {
            "application/json": { schema: unsubscribedSchema },
            "text/html": { schema: z.string() },
          },
        },
        404: { description: "not_found: the token is not valid" },
        ...unavailableError,
      },
    },
    async (c) => {
      const payload = await openTracking(c, "unsubscribe");
      if (!payload) return invalidUnsubscribe(c);
      // The body is not required to say `List-Unsubscribe=One-Click`: a valid token is the authority,
      // and refusing a mail provider's slightly different POST would leave the person subscribed.
      try {
        await enqueue(c.env, [unsubscribeMessage(payload, Date.now())]);
      } catch (err) {
        if (wantsHtml(c) && err instanceof ApiError && err.type === "unavailable") {
          log("error", "unsubscribe not queued", {
            request_id: c.get("requestId"),
            ...describeError(err.cause),
          });
          return c.body(tryAgainPage(), 503, { ...PAGE_HEADERS, "Retry-After": "5" });
        }
        throw err;
      }
      if (wantsHtml(c)) return c.body(unsubscribedPage(payload.topic), 200, PAGE_HEADERS);
      return c.json({ object: "unsubscribe" as const, unsubscribed: true as const, topic: payload.topic });
    },
  );
}

async function openTracking(c: Context<AppEnv>, kind: TokenKind): Promise<TokenPayload | null> {
  return openToken(await trackingKeyring(c.env), c.req.param("token") ?? "", kind);
}

/** Sends an open's or click's event after the response; a failure is logged, never surfaced. */
function recordInBackground(c: Context<AppEnv>, work: () => Promise<EventMessage | null>): void {
  const requestId = c.get("requestId");
  const send = async () => {
    try {
      const message = await work();
      if (message) await enqueue(c.env, [message]);
    } catch (err) {
      const cause = err instanceof ApiError && err.cause !== undefined ? err.cause : err;
      log("error", "tracking event not recorded", { request_id: requestId, ...describeError(cause) });
    }
  };
  c.executionCtx.waitUntil(send());
}

function wantsHtml(c: Context<AppEnv>): boolean {
  return /\btext\/html\b/i.test(c.req.header("accept") ?? "");
}

function invalidUnsubscribe(c: Context<AppEnv>): Response {
  if (wantsHtml(c)) return c.body(invalidLinkPage(), 404, PAGE_HEADERS);
  throw new ApiError("not_found", "this unsubscribe link is not valid");
}

/**
 * The target as a Location value. Printable ASCII passes byte for byte (query, fragment, existing
 * escapes); anything else (non-ASCII, spaces) is percent-encoded as UTF-8, as a browser would.
 */
export function locationHeader(url: string): string {
  return url.replace(/[^\x21-\x7e]+/gu, (run) => encodeURI(run));
}
