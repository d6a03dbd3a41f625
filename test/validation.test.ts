import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import * as z from "zod";
import { ApiError } from "../src/lib/errors";
import { parseJsonBody } from "../src/lib/http";
import { type ApiRouteConfig, createApp, type RouteHandler, route } from "../src/lib/openapi";
import { limitParam, topicParam } from "../src/lib/params";

/** route()'s validation hook, on a small app of its own. */
const thingRoute = {
  method: "post",
  path: "/things/{id}",
  operationId: "postThing",
  security: [],
  request: {
    params: z.object({ id: z.string().regex(/^t_\d+$/, "must be a thing id") }),
    query: z.object({ limit: limitParam(), topic: topicParam.optional() }),
    body: {
      content: { "application/json": { schema: z.strictObject({ name: z.string(), size: z.number() }) } },
      required: true,
    },
  },
  responses: { 200: { description: "ok" } },
} satisfies ApiRouteConfig;

function appWith(handler: RouteHandler<typeof thingRoute>) {
  const app = createApp();
  app.onError((err, c) =>
    err instanceof ApiError ? c.json(err.toBody(), err.status) : c.json({ unexpected: String(err) }, 500),
  );
  route(app, thingRoute, handler);
  return (path: string, body: unknown) =>
    app.request(
      path,
      { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
      env,
    );
}

describe("route() validation", () => {
  const ok = { name: "a", size: 1 };

  it("hands the handler its parsed path, query (defaults applied) and body", async () => {
    const call = appWith((c, input) => c.json(input));
    const res = await call("/things/t_1?topic=news", ok);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      params: { id: "t_1" },
      query: { limit: 20, topic: "news" },
      body: ok,
    });
  });

  it("names the parameter at fault, and lists every fault of the query", async () => {
    const call = appWith((c) => c.json({}));
    const one = await (await call("/things/nope", ok)).json<any>();
    expect(one.error).toMatchObject({
      type: "validation_error",
      param: "id",
      message: "id must be a thing id",
    });
    const many = await (await call("/things/t_1?limit=0&topic=Bad&colour=red&limit=3", ok)).json<any>();
    expect(many.error.param).toBe("colour");
    expect(many.error.errors.map((e: { param: string }) => e.param).sort()).toEqual(
      ["colour", "limit", "limit", "topic"].sort(),
    );
  });

  it("lets a handler parse the body again (route() has read the stream once)", async () => {
    const call = appWith(async (c) => c.json(await parseJsonBody(c, z.object({ name: z.string() }))));
    const res = await call("/things/t_1", ok);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "a" });
  });
});
