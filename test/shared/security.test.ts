import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { call, freshAccount, json, mintToken } from "../helpers";
import { V1_ROUTES } from "./routes";

/**
 * The security table, run against every /v1 route (SPEC §3): no token, a malformed one, an expired
 * one, a forged signature, a missing scope, another account named without admin.
 */

const SCOPES = [
  "events:read",
  "suppressions:read",
  "suppressions:write",
  "send",
  "webhooks:read",
  "webhooks:write",
  "admin",
];

describe("every /v1 operation of the OpenAPI document", () => {
  it("is in the shared route table and documents bearer security", async () => {
    const doc = await json(await call("GET", "/openapi.json"));
    const documented: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      if (!path.startsWith("/v1/")) continue;
      for (const [method, op] of Object.entries(methods)) {
        documented.push(`${method.toUpperCase()} ${path}`);
        // One bearer requirement naming the scope (role) the route needs (OpenAPI 3.1, SPEC §13).
        const route = V1_ROUTES.find((r) => r.method === method.toUpperCase() && r.doc === path);
        expect(op.security, `${method} ${path}`).toEqual([{ bearer: [route?.scope] }]);
      }
    }
    expect(documented.sort()).toEqual(V1_ROUTES.map((r) => `${r.method} ${r.doc}`).sort());
  });
});

describe.each(V1_ROUTES)("$method $doc", (route) => {
  const send = (
    token: string | undefined,
    options: { path?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) =>
    call(route.method, options.path ?? route.path, {
      ...(token ? { token } : {}),
      ...((options.body ?? route.body) !== undefined ? { body: options.body ?? route.body } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
    });
  const expectError = async (res: Response, status: number, type: string) => {
    expect(res.status).toBe(status);
    expect((await json(res)).error.type).toBe(type);
  };

  it("is 401 without a token, with a malformed one, an expired one or a forged signature", async () => {
    const account = freshAccount();
    const expired = await mintToken(account, route.scope, {
      expiresIn: Math.floor(Date.now() / 1000) - 3600,
    });
    const forged = await mintToken(account, route.scope, {
      secret: "another-secret-another-secret-0123456789",
    });
    const unsigned = `${await new SignJWT({ scope: route.scope })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(account)
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(env.JWT_SECRET))}`.replace(/\.[^.]+$/, ".");
    for (const token of [undefined, "not.a.jwt", expired, forged, unsigned]) {
      await expectError(await send(token), 401, "authentication_error");
    }
    const basic = await send(undefined, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    await expectError(basic, 401, "authentication_error");
  });

  it(`is 403 without its scope (${route.scope})`, async () => {
    const token = await mintToken(
      freshAccount(),
      SCOPES.filter((s) => s !== route.scope && s !== "admin").join(" "),
    );
    await expectError(await send(token), 403, "permission_error");
  });
});

// The admin-only route has no other account to name: its missing-scope case above is the one.
describe.each(V1_ROUTES.filter((r) => r.account !== null))("$method $doc for another account", (route) => {
  it("is 403 naming account_id when a token without admin names another account", async () => {
    const token = await mintToken(freshAccount(), route.scope);
    const other = freshAccount();
    const res =
      route.account === "query"
        ? await call(route.method, `${route.path}?account_id=${other}`, {
            token,
            ...(route.body !== undefined ? { body: route.body } : {}),
          })
        : await call(route.method, route.path, {
            token,
            body: { ...(route.body as object), account_id: other },
          });
    expect(res.status).toBe(403);
    expect((await json(res)).error).toMatchObject({ type: "permission_error", param: "account_id" });
  });
});
