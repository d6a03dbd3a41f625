import { describe, expect, it } from "vitest";
import { call, json } from "./helpers";

describe("operations routes", () => {
  it("answers /healthz with ok and a request id", async () => {
    const res = await call("GET", "/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(res.headers.get("request-id")).toMatch(/^req_[0-9a-f]{24}$/);
  });

  it("serves a generated OpenAPI document naming the routes", async () => {
    const res = await call("GET", "/openapi.json");
    const doc = await json(res);
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/events", "/v1/account", "/v1/messages"]),
    );
    expect(doc.paths["/v1/events"].get.parameters.map((p: { name: string }) => p.name)).toContain(
      "event_type",
    );
  });

  it("serves a readable reference page at /docs", async () => {
    const res = await call("GET", "/docs");
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    expect(html).toContain("<code>/v1/events</code>");
  });

  it("answers unknown paths with 404 not_found in the error shape", async () => {
    const res = await call("GET", "/nope");
    expect(res.status).toBe(404);
    const body = await json(res);
    expect(body.error.type).toBe("not_found");
    expect(res.headers.get("request-id")).toBeTruthy();
  });

  it("answers a known path with another method with 405 and Allow", async () => {
    const res = await call("DELETE", "/v1/events");
    expect(res.status).toBe(405);
    expect((await json(res)).error.type).toBe("method_not_allowed");
    expect(res.headers.get("allow")).toContain("GET");
  });
});
