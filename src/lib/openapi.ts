import { OpenAPIRegistry, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { type Handler, Hono, type MiddlewareHandler } from "hono";
import * as z from "zod";
import type { AppEnv } from "../app-env";
import { ERROR_STATUS, type ErrorType } from "./errors";

/**
 * The app: plain Hono plus the registry its OpenAPI document is generated from. zod-to-openapi reads
 * zod 4's own `.meta()`, so no zod extension is installed (the Hono wrapper's `extendZodWithOpenApi(z)`
 * kept every zod locale in the bundle: about 30 KB gzipped).
 */
export type App = Hono<AppEnv> & { openAPIRegistry: OpenAPIRegistry };

export function createApp(): App {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
  });
  return Object.assign(new Hono<AppEnv>(), { openAPIRegistry: registry });
}

export const errorSchema = z
  .object({
    error: z.object({
      type: z.enum(Object.keys(ERROR_STATUS) as [ErrorType, ...ErrorType[]]),
      message: z.string(),
      param: z.string().optional(),
      errors: z.array(z.object({ param: z.string(), message: z.string() })).optional(),
    }),
  })
  .meta({ id: "Error" });

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: errorSchema } },
});

/** The error responses every authenticated JSON route documents (SPEC §4). */
export const commonErrors = {
  400: errorResponse("validation_error: a parameter, the body or its JSON is invalid"),
  401: errorResponse("authentication_error: missing, malformed, expired or wrongly signed token"),
  403: errorResponse("permission_error: the token lacks the scope, or names another account without admin"),
  429: errorResponse("rate_limit_exceeded: too many requests for this account; wait Retry-After seconds"),
  500: errorResponse("internal_error or configuration_error"),
  503: errorResponse("unavailable: D1, KV or the JWKS failed; retry (Retry-After)"),
} as const;

export const bodyErrors = {
  413: errorResponse("payload_too_large: a JSON body over 1 MiB"),
  415: errorResponse("unsupported_media_type: the body is not application/json"),
} as const;

export const notFoundError = { 404: errorResponse("not_found") } as const;
export const unavailableError = {
  503: errorResponse("unavailable: the queue refused the write; retry"),
} as const;

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** Hono path (`/v1/suppressions/:email`) of an OpenAPI path (`/v1/suppressions/{email}`). */
export const honoPath = (openapiPath: string) => openapiPath.replace(/\{([^}]+)\}/g, ":$1");

/**
 * Registers a route's OpenAPI description (generated from its zod schemas) and its handlers.
 * Requests are validated by the handlers themselves (lib/http.ts, events/query.ts), so every
 * fault gets the SPEC §4 shape and `param`, which the stock validator cannot give.
 */
export function route(
  app: App,
  config: RouteConfig,
  ...handlers: [...MiddlewareHandler<AppEnv>[], Handler<AppEnv>]
): void {
  app.openAPIRegistry.registerPath(config);
  app.on(config.method.toUpperCase(), honoPath(config.path), ...(handlers as [Handler<AppEnv>]));
}
