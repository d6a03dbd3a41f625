/**
 * The open pixel and the click redirect, answered by this module alone: the code that runs for
 * every open and click of every sent email. The Worker's fetch answers them here before the router
 * (serveHotPath, see index.ts), and the routes registered below call the same functions, so there
 * is one behaviour whichever way a request arrives. Nothing here
 * reads D1 or KV: the token carries everything, and the write is one queue message in waitUntil.
 */
import * as z from "zod";
import type { Env } from "../../env";
import { ApiError } from "../../lib/errors";
import { requestId } from "../../lib/ids";
import { describeError, log } from "../../lib/log";
import { type App, notFoundError, route } from "../../lib/openapi";
import { clientAddressKey, withinLimit } from "../../lib/rate-limit";
import { enqueue } from "../../pipeline/enqueue";
import type { EventMessage } from "../../pipeline/messages";
import { forgetAtEdge, rememberAtEdge, seenAtEdge } from "../edge-dedup";
import { classifyRequest, engagementMessage, readSignals, replayEventId } from "../interaction";
import { trackingKeyring } from "../keyring";
import { openToken, type TrackingKeyring, tokenNonce } from "../token";
import { tokenParam } from "./token-param";

/** A 1×1 transparent GIF89a, 43 bytes. */
export const PIXEL = new Uint8Array([
  0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00,
  0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
  0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
]);

/** Answers GET (or HEAD) /o/{token}: always the GIF; the token is opened and recorded after the response. */
export function servePixel(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  token: string,
  reqId: string,
): Response {
  const now = Date.now();
  const tokenId = tokenNonce(token);
  const replayId = tokenId ? replayEventId(tokenId, "email.opened", now) : null;
  recordInBackground(request, env, ctx, reqId, replayId, async () => {
    const payload = await openToken(await trackingKeyring(env), token, "open");
    const nonce = payload && tokenId;
    if (!payload || !nonce) return null;
    const signals = readSignals(request);
    const verdict = classifyRequest(payload, signals, now);
    return verdict.action === "record" ? engagementMessage(payload, signals, verdict.bot, now, nonce) : null;
  });
  return new Response(PIXEL, {
    headers: {
      "Content-Type": "image/gif",
      "Cache-Control": "no-store, no-cache, must-revalidate, private",
      "Request-Id": reqId,
    },
  });
}

/**
 * Answers GET or HEAD /c/{token}: 302 to the sealed target, recording the click unless the request is
 * machine traffic (HEAD included); an invalid or tampered token is 404 and never redirects.
 */
export async function serveClick(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  token: string,
  reqId: string,
): Promise<Response> {
  const now = Date.now();
  let keyring: TrackingKeyring;
  try {
    keyring = await trackingKeyring(env);
  } catch (err) {
    // Answered before the router, so its error handling is done here: the §4 shape, logged.
    const error =
      err instanceof ApiError ? err : new ApiError("internal_error", "an unexpected error occurred");
    log("error", "click not served", { request_id: reqId, type: error.type, ...describeError(err) });
    return Response.json(error.toBody(), { status: error.status, headers: { "Request-Id": reqId } });
  }
  const payload = await openToken(keyring, token, "click");
  // openToken only yields http(s) URLs; checked again because a redirect is the one thing that must be safe.
  if (!payload?.url || !/^https?:\/\//i.test(payload.url)) {
    const error = new ApiError("not_found", "this link is not valid");
    return Response.json(error.toBody(), { status: 404, headers: { "Request-Id": reqId } });
  }
  const signals = readSignals(request);
  const verdict = classifyRequest(payload, signals, now);
  const nonce = tokenNonce(token);
  if (verdict.action === "record" && nonce) {
    const message = engagementMessage(payload, signals, verdict.bot, now, nonce);
    recordInBackground(request, env, ctx, reqId, message.event.id, async () => message);
  }
  return new Response(null, {
    status: 302,
    headers: {
      Location: locationHeader(payload.url),
      "Cache-Control": "no-store",
      // The token stays with us: the target sees no Referer from the click URL.
      "Referrer-Policy": "no-referrer",
      "Request-Id": reqId,
    },
  });
}

/**
 * GET/HEAD /o/{token} and /c/{token}, recognised from the URL string without parsing it or routing.
 * Anything else (other methods, extra path segments) returns null and goes to the router.
 */
export function serveHotPath(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
): Response | Promise<Response> | null {
  if (request.method !== "GET" && request.method !== "HEAD") return null;
  const url = request.url;
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  if (pathStart < 0 || url.charCodeAt(pathStart + 2) !== 47 /* "/" */) return null;
  const route = url.charCodeAt(pathStart + 1);
  if (route !== 111 /* o */ && route !== 99 /* c */) return null;
  const queryStart = url.indexOf("?", pathStart);
  const token = url.slice(pathStart + 3, queryStart < 0 ? undefined : queryStart);
  if (token === "" || token.includes("/")) return null;
  const reqId = requestId();
  return route === 111
    ? servePixel(request, env, ctx, token, reqId)
    : serveClick(request, env, ctx, token, reqId);
}

/**
 * Sends an open's or click's event after the response; a failure is logged, never surfaced. A
 * repeat of an event this isolate already queued (same replay id: same token, type and bucket) is
 * dropped first, before the limiter and the queue (SPEC §18). Past the client address's limit
 * (TRACKING_LIMITER) nothing is opened or sent: the answer was already the same GIF or redirect,
 * and the queue never carries more than the limit from one address.
 */
function recordInBackground(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  reqId: string,
  replayId: string | null,
  work: () => Promise<EventMessage | null>,
): void {
  if (replayId !== null && seenAtEdge(replayId)) return;
  const send = async () => {
    let remembered: string | null = null;
    try {
      if (!(await withinLimit(env.TRACKING_LIMITER, clientAddressKey(request)))) return;
      const message = await work();
      if (!message) return;
      // Marked before the send, so concurrent repeats in this isolate do not queue it twice.
      if (seenAtEdge(message.event.id)) return;
      remembered = message.event.id;
      rememberAtEdge(remembered);
      await enqueue(env, [message]);
    } catch (err) {
      if (remembered !== null) forgetAtEdge(remembered);
      const cause = err instanceof ApiError && err.cause !== undefined ? err.cause : err;
      log("error", "tracking event not recorded", { request_id: reqId, ...describeError(cause) });
    }
  };
  ctx.waitUntil(send());
}

/**
 * The target as a Location value. Printable ASCII passes byte for byte (query, fragment, existing
 * escapes); anything else (non-ASCII, spaces) is percent-encoded as UTF-8, as a browser would.
 */
export function locationHeader(url: string): string {
  return url.replace(/[^\x21-\x7e]+/gu, (run) => encodeURI(run));
}

/**
 * The router's entrance to the same two answers, for what the fast path leaves to it (a request
 * that is not a plain GET/HEAD of one path segment) and for the OpenAPI document.
 */
export function registerOpenClickRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/o/{token}",
      operationId: "openPixel",
      security: [],
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
    (c, { params }) => servePixel(c.req.raw, c.env, c.executionCtx, params.token, c.get("requestId")),
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
      operationId: "followClick",
      security: [],
      summary: "Click redirect",
      description: clickDescription,
      tags: ["tracking"],
      request: { params: tokenParam },
      responses: {
        302: { description: "Redirect to the link's target (Location)" },
        ...notFoundError,
      },
    },
    (c, { params }) => serveClick(c.req.raw, c.env, c.executionCtx, params.token, c.get("requestId")),
  );
  // Hono answers HEAD with the GET handler (method HEAD, which the classifier drops); documented here.
  app.openAPIRegistry.registerPath({
    method: "head",
    path: "/c/{token}",
    operationId: "probeClick",
    security: [],
    summary: "Click redirect, probed",
    description: "The same answer as GET; records nothing (link scanners probe with HEAD).",
    tags: ["tracking"],
    request: { params: tokenParam },
    responses: { 302: { description: "Redirect to the link's target" }, ...notFoundError },
  });
}
