import { describe, expect, it } from "vitest";
import { call, freshAccount, json, mintToken } from "../helpers";
import { V1_ROUTES } from "./routes";

/**
 * The body-rejection table, run against every JSON endpoint (SPEC §4): another media type is 415,
 * malformed JSON 400, over 1 MiB 413, and a body with several faults lists each in `errors[]`.
 * Nothing is written in any case.
 */

const JSON_ROUTES = V1_ROUTES.filter((r) => r.body !== undefined);

describe("every JSON endpoint of the OpenAPI document", () => {
  it("is in the body-rejection table", async () => {
    const doc = await json(await call("GET", "/openapi.json"));
    const documented: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      // Compatibility surfaces answer in their own error shapes; their tests cover their bodies.
      if (path.startsWith("/compat/")) continue;
      for (const [method, op] of Object.entries(methods)) {
        if (op.requestBody?.content?.["application/json"]) documented.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(documented.sort()).toEqual(JSON_ROUTES.map((r) => `${r.method} ${r.doc}`).sort());
  });
});

describe.each(JSON_ROUTES)("$method $doc", (route) => {
  const tokenFor = () => mintToken(freshAccount(), route.scope);
  const expectError = async (res: Response, status: number, type: string) => {
    expect(res.status).toBe(status);
    const body = await json(res);
    expect(body.error.type).toBe(type);
    expect(res.headers.get("request-id")).toMatch(/^req_/);
    return body.error;
  };

  it("is 415 for a body that is not application/json", async () => {
    const res = await call(route.method, route.path, {
      token: await tokenFor(),
      rawBody: JSON.stringify(route.body),
      headers: { "content-type": "text/plain" },
    });
    await expectError(res, 415, "unsupported_media_type");
  });

  it("is 400 for malformed JSON", async () => {
    const res = await call(route.method, route.path, {
      token: await tokenFor(),
      rawBody: '{"unterminated": ',
      headers: { "content-type": "application/json" },
    });
    await expectError(res, 400, "validation_error");
  });

  it("is 413 over 1 MiB", async () => {
    const res = await call(route.method, route.path, {
      token: await tokenFor(),
      rawBody: `{"pad": "${"x".repeat(1024 * 1024)}"}`,
      headers: { "content-type": "application/json" },
    });
    await expectError(res, 413, "payload_too_large");
  });

  it("lists every fault of a body with several, each by its field", async () => {
    const res = await call(route.method, route.path, { token: await tokenFor(), body: route.faults });
    const error = await expectError(res, 400, "validation_error");
    expect(error.errors.length).toBeGreaterThan(1);
    expect(error.param).toBe(error.errors[0].param);
    // Each fault names its top-level field; unknown fields are named by the body that holds them.
    const fields = [...Object.keys(route.faults as object), "body"];
    for (const fault of error.errors) expect(fields).toContain(fault.param);
  });
});
