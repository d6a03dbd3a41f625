/**
 * The unsubscribe paths of SPEC §5: the page (GET, records nothing) and the one-click POST. They
 * never read D1 or KV: the token carries everything, and the POST awaits its one queue message, so
 * its 200 means "recorded".
 */
import type { Context } from "hono";
import * as z from "zod";
import type { AppEnv } from "../../app-env";
import { ApiError } from "../../lib/errors";
import { describeError, log } from "../../lib/log";
import { type App, route, unavailableError } from "../../lib/openapi";
import { clientAddressKey, TRACKING_RETRY_AFTER_SECONDS, withinLimit } from "../../lib/rate-limit";
import { enqueue } from "../../pipeline/enqueue";
import { forgetAtEdge, rememberAtEdge, seenAtEdge } from "../edge-dedup";
import { unsubscribeMessage } from "../interaction";
import { trackingKeyring } from "../keyring";
import { invalidLinkPage, PAGE_HEADERS, tryAgainPage, unsubscribedPage, unsubscribePage } from "../pages";
import { openToken, type TokenPayload, tokenNonce } from "../token";
import { tokenParam } from "./token-param";

const unsubscribedSchema = z.object({
  object: z.literal("unsubscribe"),
  unsubscribed: z.literal(true),
  topic: z.string().nullable(),
});
const htmlContent = (description: string) => ({
  description,
  content: { "text/html": { schema: z.string() } },
});

export function registerUnsubscribeRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/u/{token}",
      operationId: "getUnsubscribePage",
      security: [],
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
    async (c, { params }) => {
      const payload = await openUnsubscribeToken(c, params.token);
      if (!payload) return invalidUnsubscribe(c);
      return c.body(unsubscribePage(params.token, payload.topic), 200, PAGE_HEADERS);
    },
  );

  route(
    app,
    {
      method: "post",
      path: "/u/{token}",
      operationId: "unsubscribe",
      security: [],
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
              // Exactly as accepted: a valid token is the authority, so no field is required (RFC 8058
              // clients send `List-Unsubscribe=One-Click`; the page's button sends nothing).
              schema: z.object({
                "List-Unsubscribe": z
                  .string()
                  .optional()
                  .meta({ description: "`One-Click` from RFC 8058 clients; not required, not checked" }),
              }),
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
        429: { description: "rate_limit_exceeded: too many requests from this address (Retry-After)" },
        ...unavailableError,
      },
    },
    async (c, { params }) => {
      const payload = await openUnsubscribeToken(c, params.token);
      if (!payload) return invalidUnsubscribe(c);
      // Past the client address's limit nothing is queued, and the answer says so (429): unlike a
      // pixel or a redirect, a 200 here would claim an unsubscribe that did not happen.
      if (!(await withinLimit(c.env.TRACKING_LIMITER, clientAddressKey(c.req.raw)))) {
        const retryAfter = String(TRACKING_RETRY_AFTER_SECONDS);
        if (wantsHtml(c)) return c.body(tryAgainPage(), 429, { ...PAGE_HEADERS, "Retry-After": retryAfter });
        throw new ApiError("rate_limit_exceeded", "too many requests from this address; retry later", {
          headers: { "Retry-After": retryAfter },
        });
      }
      // The body is not required to say `List-Unsubscribe=One-Click`: a valid token is the authority,
      // and refusing a mail provider's slightly different POST would leave the person subscribed.
      const message = unsubscribeMessage(payload, Date.now(), tokenNonce(params.token) ?? "");
      // A retried POST of one this isolate already queued today is answered without queueing again
      // (SPEC §18: repeats inside their replay bucket are dropped at the edge).
      const repeat = seenAtEdge(message.event.id);
      try {
        if (!repeat) {
          rememberAtEdge(message.event.id);
          await enqueue(c.env, [message]);
        }
      } catch (err) {
        forgetAtEdge(message.event.id);
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

async function openUnsubscribeToken(c: Context<AppEnv>, token: string): Promise<TokenPayload | null> {
  return openToken(await trackingKeyring(c.env), token, "unsubscribe");
}

function wantsHtml(c: Context<AppEnv>): boolean {
  return /\btext\/html\b/i.test(c.req.header("accept") ?? "");
}

function invalidUnsubscribe(c: Context<AppEnv>): Response {
  if (wantsHtml(c)) return c.body(invalidLinkPage(), 404, PAGE_HEADERS);
  throw new ApiError("not_found", "this unsubscribe link is not valid");
}
