import { OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import type { Context } from "hono";
import { matchedRoutes } from "hono/route";
import * as z from "zod";
import { registerAccountRoutes } from "./accounts/routes";
import { registerAdminRoutes } from "./admin/routes";
import { registerAlertRoutes } from "./alerts/routes";
import type { AppEnv } from "./app-env";
import { registerCompatRoutes } from "./compat/routes";
import { registerErasureRoutes } from "./erasures/routes";
import { registerEventExportRoute } from "./events/export";
import { registerEventRoutes } from "./events/routes";
import { isDependencyFailure, isTooLargeForD1 } from "./lib/dependency";
import { renderDocsPage } from "./lib/docs-page";
import { ApiError } from "./lib/errors";
import { drainUnreadBody } from "./lib/http";
import { requestId } from "./lib/ids";
import { describeError, log } from "./lib/log";
import { type App, createApp, route } from "./lib/openapi";
import { registerMessageRoutes } from "./messages/routes";
import { registerMetricsRoutes } from "./metrics/routes";
import { registerReputationRoutes } from "./reputation/routes";
import { registerSesRoutes } from "./ses/routes";
import { registerSuppressionRoutes } from "./suppressions/routes";
import { registerTrackingRoutes } from "./tracking/routes";
import { registerWebhookRoutes } from "./webhooks/routes";

/** Paths whose successful requests are not access-logged: the tracking hot path. */
const QUIET_PATH = /^\/[ocu]\//;

export function newApp(): App {
  const app = createApp();

  app.use(async (c, next) => {
    const id = requestId();
    const started = Date.now();
    c.set("requestId", id);
    await next();
    await drainUnreadBody(c.req.raw);
    c.res.headers.set("Request-Id", id);
    if (c.res.status >= 400 || !QUIET_PATH.test(c.req.path)) {
      log(c.res.status >= 500 ? "error" : "info", "request", {
        request_id: id,
        method: c.req.method,
        route: routeTemplate(c),
        status: c.res.status,
        duration_ms: Date.now() - started,
      });
    }
  });

  app.onError((err, c) => errorResponse(c, err));
  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length > 0) {
      return errorResponse(
        c,
        new ApiError("method_not_allowed", `${c.req.method} is not served here; use ${allowed.join(", ")}`, {
          headers: { Allow: allowed.join(", ") },
        }),
      );
    }
    return errorResponse(c, new ApiError("not_found", `no route for ${c.req.method} ${c.req.path}`));
  });

  route(
    app,
    {
      method: "get",
      path: "/healthz",
      operationId: "getHealth",
      security: [],
      summary: "Liveness check",
      tags: ["operations"],
      responses: {
        200: {
          description: "The Worker is up",
          content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
        },
      },
    },
    (c) => c.json({ ok: true as const }),
  );

  registerEventRoutes(app);
  registerEventExportRoute(app);
  registerCompatRoutes(app);
  registerAccountRoutes(app);
  registerAdminRoutes(app);
  registerAlertRoutes(app);
  registerMessageRoutes(app);
  registerMetricsRoutes(app);
  registerReputationRoutes(app);
  registerSesRoutes(app);
  registerSuppressionRoutes(app);
  registerErasureRoutes(app);
  registerTrackingRoutes(app);
  registerWebhookRoutes(app);

  app.get("/openapi.json", (c) => c.json(openApiDocument(app)));
  app.get("/docs", (c) => c.html(renderDocsPage(openApiDocument(app))));
  return app;
}

let cachedDocument: ReturnType<OpenApiGeneratorV31["generateDocument"]> | undefined;

export function openApiDocument(app: App) {
  cachedDocument ??= new OpenApiGeneratorV31(app.openAPIRegistry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "mailtrail",
      version: "1.0.0",
      description:
        "Edge email events: tracking, Amazon SES ingestion through SNS, suppressions and an events API. " +
        "Authenticate with `Authorization: Bearer <JWT>`; errors share one shape.",
      // package.json is private and names no licence: proprietary (SPDX custom-licence syntax).
      license: { name: "Proprietary", identifier: "LicenseRef-mailtrail-proprietary" },
    },
    // Relative: the document describes whichever deployment serves it.
    servers: [{ url: "/", description: "This deployment" }],
  });
  return cachedDocument;
}

/**
 * The request's route as its template (`/v1/suppressions/{email}`), for logs: a raw path would carry
 * an address or a token (SPEC §13). A request no route answers is logged as `(unmatched)`.
 */
export function routeTemplate(c: Context<AppEnv>): string {
  const endpoint = matchedRoutes(c)
    .filter((r) => r.method !== "ALL" && !r.path.endsWith("*"))
    .at(-1);
  return endpoint ? endpoint.path.replace(/:([A-Za-z_]+)/g, "{$1}") : "(unmatched)";
}

function errorResponse(c: Context<AppEnv>, err: unknown): Response {
  const apiError =
    err instanceof ApiError
      ? err
      : isTooLargeForD1(err)
        ? new ApiError(
            "validation_error",
            "the request is too large or too complex for the database; use fewer filter values or keywords",
          )
        : isDependencyFailure(err)
          ? new ApiError("unavailable", "a storage dependency failed; retry", {
              headers: { "Retry-After": "5" },
            })
          : new ApiError("internal_error", "an unexpected error occurred; it was logged");
  if (!(err instanceof ApiError) || apiError.status >= 500) {
    log("error", "request failed", {
      request_id: c.get("requestId"),
      method: c.req.method,
      route: routeTemplate(c),
      type: apiError.type,
      ...describeError(err),
    });
  }
  const response = c.json(apiError.toBody(), apiError.status);
  for (const [name, value] of Object.entries(apiError.headers ?? {})) response.headers.set(name, value);
  return response;
}

const patternCache = new Map<string, RegExp>();

/** Methods served on a path, for 405 answers (Hono itself only knows 404). */
function allowedMethods(app: App, path: string): string[] {
  const methods = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue;
    let pattern = patternCache.get(r.path);
    if (!pattern) {
      pattern = new RegExp(
        `^${r.path.replace(/[.+?^$()[\]\\|]/g, "\\$&").replace(/:[A-Za-z_]+/g, "[^/]+")}$`,
      );
      patternCache.set(r.path, pattern);
    }
    if (pattern.test(path)) methods.add(r.method);
  }
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}
