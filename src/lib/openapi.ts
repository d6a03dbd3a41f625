import { OpenAPIRegistry, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { type Context, type Handler, Hono, type MiddlewareHandler } from "hono";
import * as z from "zod";
import type { AppEnv } from "../app-env";
import { ERROR_STATUS, type ErrorType } from "./errors";
import { parseJsonBody } from "./http";
import { parsePath, parseQuery, type QuerySchema } from "./validate";

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

/** Errors of a route that takes a JSON body and queues what it accepts: the common ones, 413, 415, 503. */
export const queuedBodyErrors = { ...commonErrors, ...bodyErrors, ...unavailableError } as const;

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** Hono path (`/v1/suppressions/:email`) of an OpenAPI path (`/v1/suppressions/{email}`). */
export const honoPath = (openapiPath: string) => openapiPath.replace(/\{([^}]+)\}/g, ":$1");

/** `security` of the routes that take `Authorization: Bearer <JWT>`: route() names the scope. */
export const BEARER = [{ bearer: [] }];

/** An authentication middleware that requires a scope (auth/middleware.ts `requireScope`). */
export type ScopedMiddleware = MiddlewareHandler<AppEnv> & { scope: string };

const scopeOf = (m: MiddlewareHandler<AppEnv>) =>
  typeof (m as Partial<ScopedMiddleware>).scope === "string" ? (m as ScopedMiddleware).scope : null;

/**
 * The operation's security as enforced: a bearer route lists the scope its middleware requires
 * (OpenAPI 3.1 lets a bearer requirement name roles), so the document cannot drift from the code.
 * A bearer route without a scope middleware, or one that names another scope, fails at start-up.
 */
function securityOf(config: ApiRouteConfig, middlewares: MiddlewareHandler<AppEnv>[]) {
  const scopes = middlewares.map(scopeOf).filter((s): s is string => s !== null);
  const where = `${config.method.toUpperCase()} ${config.path}`;
  if (config.security.length === 0) {
    if (scopes.length > 0) throw new Error(`${where} requires a scope but documents no security`);
    return config.security;
  }
  const [scope, ...more] = scopes;
  if (scope === undefined || more.length > 0) throw new Error(`${where} needs exactly one scope middleware`);
  const named = config.security.flatMap((requirement) => Object.values(requirement).flat());
  if (named.some((s) => s !== scope)) throw new Error(`${where} documents a scope other than ${scope}`);
  return [{ bearer: [scope] }];
}

/**
 * What every operation must say for the document to pass `redocly lint` (SPEC §13): its
 * `operationId`, and its `security` (`[]` on public routes, BEARER on the rest).
 */
export type ApiRouteConfig = RouteConfig & {
  operationId: string;
  security: RouteConfig["security"] & object;
};

type Schema<T> = T extends z.ZodType ? T : never;
type RequestOf<C> = C extends { request: infer R } ? R : Record<string, never>;
type JsonBodyOf<R> = R extends { body: { content: { "application/json": { schema: infer B } } } }
  ? z.output<Schema<B>>
  : undefined;

/** A request as its route's schemas parsed it: the handler's second argument. */
export interface RouteInput<C extends ApiRouteConfig> {
  query: RequestOf<C> extends { query: infer Q } ? z.output<Schema<Q>> : Record<string, never>;
  params: RequestOf<C> extends { params: infer P } ? z.output<Schema<P>> : Record<string, never>;
  body: JsonBodyOf<RequestOf<C>>;
}

export type RouteHandler<C extends ApiRouteConfig> = (
  c: Context<AppEnv>,
  input: RouteInput<C>,
) => Response | Promise<Response>;

/**
 * Registers a route: its OpenAPI description (generated from its zod schemas) and its handlers.
 * After the middlewares (authentication first: a request without a valid token is 401 whatever
 * its parameters), the path, query and JSON body are validated by the very schemas the document
 * shows, through the one hook of lib/validate.ts, and handed to the handler parsed. A route that
 * declares no query schema takes its query as it comes (the tracking and SNS paths).
 */
export function route<const C extends ApiRouteConfig>(
  app: App,
  config: C,
  ...handlers: [...MiddlewareHandler<AppEnv>[], RouteHandler<C>]
): void {
  const middlewares = handlers.slice(0, -1) as MiddlewareHandler<AppEnv>[];
  app.openAPIRegistry.registerPath({ ...config, security: securityOf(config, middlewares) });
  const handler = handlers[handlers.length - 1] as RouteHandler<C>;
  const request = config.request;
  const media = request?.body?.content["application/json"];
  const json = media && "schema" in media ? media.schema : undefined;
  const validated: Handler<AppEnv> = async (c) => {
    const input = {
      params: request?.params ? parsePath(request.params as z.ZodObject, c.req.param()) : {},
      query: request?.query ? parseQuery(request.query as QuerySchema, new URL(c.req.url).searchParams) : {},
      body: json
        ? await parseJsonBody(c, json as z.ZodType, { optional: request?.body?.required !== true })
        : undefined,
    };
    return handler(c, input as RouteInput<C>);
  };
  app.on(
    config.method.toUpperCase(),
    honoPath(config.path),
    ...([...middlewares, validated] as [Handler<AppEnv>]),
  );
}
