import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { BASE, call, freshAccount, json, mintToken } from "../helpers";
import { createEndpoint, hookName, hookUrl, tokensFor } from "./support";

const ID = "whk_000000000000000000000000";
const ROUTES = [
  {
    method: "POST",
    path: "/v1/webhooks",
    scope: "webhooks:write",
    body: { url: "https://hooks.example.com/x" },
  },
  { method: "GET", path: "/v1/webhooks", scope: "webhooks:read" },
  { method: "GET", path: `/v1/webhooks/${ID}`, scope: "webhooks:read" },
  { method: "PATCH", path: `/v1/webhooks/${ID}`, scope: "webhooks:write", body: { description: "x" } },
  { method: "DELETE", path: `/v1/webhooks/${ID}`, scope: "webhooks:write" },
  { method: "POST", path: `/v1/webhooks/${ID}/secret`, scope: "webhooks:write" },
  { method: "GET", path: `/v1/webhooks/${ID}/deliveries`, scope: "webhooks:read" },
  {
    method: "POST",
    path: `/v1/webhooks/${ID}/replay`,
    scope: "webhooks:write",
    body: { event_ids: ["evt_x"] },
  },
] as const;

describe.each(ROUTES)("$method $path", ({ method, path, scope, ...rest }) => {
  const body = "body" in rest ? rest.body : undefined;

  it("is 401 without a token, with a forged one and with an expired one", async () => {
    const account = freshAccount();
    const forged = await mintToken(account, scope, { secret: "another-secret-another-secret-0123456789" });
    const expired = await mintToken(account, scope, { expiresIn: Math.floor(Date.now() / 1000) - 3600 });
    for (const token of [undefined, forged, expired]) {
      const res = await call(method, path, { ...(token ? { token } : {}), ...(body ? { body } : {}) });
      expect(res.status).toBe(401);
      expect((await json(res)).error.type).toBe("authentication_error");
    }
  });

  it(`is 403 without ${scope}, and passes the scope check with it or with admin`, async () => {
    const account = freshAccount();
    const others = [
      "events:read",
      "suppressions:read",
      "suppressions:write",
      "send",
      "webhooks:read",
      "webhooks:write",
    ];
    const without = await mintToken(account, others.filter((s) => s !== scope).join(" "));
    const res = await call(method, path, { token: without, ...(body ? { body } : {}) });
    expect(res.status).toBe(403);
    expect((await json(res)).error.type).toBe("permission_error");
    for (const granted of [scope, "admin"]) {
      const ok = await call(method, path, {
        token: await mintToken(account, granted),
        ...(body ? { body } : {}),
      });
      expect([200, 201, 404]).toContain(ok.status);
    }
  });

  it("is 403 when a non-admin token names another account", async () => {
    const token = await mintToken(freshAccount(), scope);
    const res = await call(method, `${path}?account_id=${freshAccount()}`, {
      token,
      ...(body ? { body } : {}),
    });
    expect(res.status).toBe(403);
    expect((await json(res)).error).toMatchObject({ type: "permission_error", param: "account_id" });
  });
});

describe("webhook endpoints", () => {
  it("creates, lists, gets, patches, rotates and deletes an endpoint", async () => {
    const account = freshAccount();
    const t = await tokensFor(account);
    const url = hookUrl(hookName());
    const created = await call("POST", "/v1/webhooks", {
      token: t.write,
      body: {
        url,
        description: "CRM",
        event_types: ["email.bounced", "email.complained", "email.bounced"],
        filters: { topic: "news", campaign: "Spring", domain: "Mail.Example.com", tags: ["a", "b"] },
      },
    });
    expect(created.status).toBe(201);
    const ep = await json(created);
    expect(ep).toEqual({
      id: expect.stringMatching(/^whk_[0-9a-f]{24}$/),
      object: "webhook_endpoint",
      url,
      description: "CRM",
      event_types: ["email.bounced", "email.complained"],
      filters: { topic: "news", campaign: "Spring", domain: "mail.example.com", tags: ["a", "b"] },
      status: "enabled",
      disabled_reason: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/),
    });
    expect(atob(ep.secret.slice(6))).toHaveLength(32);

    const { secret: _secret, ...shown } = ep;
    const list = await json(await call("GET", "/v1/webhooks", { token: t.read }));
    expect(list).toEqual({ object: "list", data: [shown] });
    expect(await json(await call("GET", `/v1/webhooks/${ep.id}`, { token: t.read }))).toEqual(shown);

    const patched = await json(
      await call("PATCH", `/v1/webhooks/${ep.id}`, {
        token: t.write,
        body: { description: null, event_types: null, filters: {}, status: "disabled" },
      }),
    );
    expect(patched).toMatchObject({
      description: null,
      event_types: null,
      filters: {},
      status: "disabled",
      disabled_reason: "manual",
      url,
    });
    const enabled = await json(
      await call("PATCH", `/v1/webhooks/${ep.id}`, { token: t.write, body: { status: "enabled" } }),
    );
    expect(enabled).toMatchObject({ status: "enabled", disabled_reason: null });

    const rotated = await call("POST", `/v1/webhooks/${ep.id}/secret`, { token: t.write });
    expect(rotated.status).toBe(200);
    const r = await json(rotated);
    expect(r.secret).toMatch(/^whsec_/);
    expect(r.secret).not.toBe(ep.secret);
    const row = await env.DB.prepare(
      "SELECT secret, previous_secret, previous_expires_at FROM webhook_endpoints WHERE id = ?",
    )
      .bind(ep.id)
      .first<{ secret: string; previous_secret: string; previous_expires_at: number }>();
    // Stored sealed under SECRETS_KEY (test/webhooks/secrets.test.ts opens them).
    expect(row?.secret).toMatch(/^enc1\./);
    expect(row?.previous_secret).toMatch(/^enc1\./);
    expect(row?.previous_expires_at).toBeGreaterThan(Date.now() + 23.9 * 3600_000);
    // The secret is shown only on creation and rotation.
    expect(
      JSON.stringify(await json(await call("GET", `/v1/webhooks/${ep.id}`, { token: t.read }))),
    ).not.toContain("whsec_");

    const del = await call("DELETE", `/v1/webhooks/${ep.id}`, { token: t.write });
    expect(await json(del)).toEqual({ deleted: true, id: ep.id });
    expect((await call("GET", `/v1/webhooks/${ep.id}`, { token: t.read })).status).toBe(404);
    expect((await call("DELETE", `/v1/webhooks/${ep.id}`, { token: t.write })).status).toBe(404);
    expect((await json(await call("GET", "/v1/webhooks", { token: t.read }))).data).toEqual([]);
  });

  it("keeps another account's endpoints out of reach: 404 on every route", async () => {
    const alice = freshAccount("alice");
    const bob = await tokensFor(freshAccount("bob"));
    const ep = await createEndpoint(alice, { url: hookUrl(hookName()) });
    for (const [method, path, body] of [
      ["GET", `/v1/webhooks/${ep.id}`],
      ["PATCH", `/v1/webhooks/${ep.id}`, { status: "disabled" }],
      ["DELETE", `/v1/webhooks/${ep.id}`],
      ["POST", `/v1/webhooks/${ep.id}/secret`],
      ["GET", `/v1/webhooks/${ep.id}/deliveries`],
      ["POST", `/v1/webhooks/${ep.id}/replay`, { event_ids: ["evt_x"] }],
    ] as const) {
      const token = method === "GET" ? bob.read : bob.write;
      const res = await call(method, path, { token, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect((await json(res)).error.type).toBe("not_found");
    }
    expect((await json(await call("GET", "/v1/webhooks", { token: bob.read }))).data).toEqual([]);
    const still = await json(
      await call("GET", `/v1/webhooks/${ep.id}`, { token: (await tokensFor(alice)).read }),
    );
    expect(still).toMatchObject({ id: ep.id, status: "enabled" });
  });

  it("lets an admin act for the account named by account_id", async () => {
    const target = freshAccount("target");
    const admin = await mintToken(freshAccount("ops"), "admin");
    const res = await call("POST", `/v1/webhooks?account_id=${target}`, {
      token: admin,
      body: { url: hookUrl(hookName()) },
    });
    expect(res.status).toBe(201);
    const list = await json(await call("GET", "/v1/webhooks", { token: (await tokensFor(target)).read }));
    expect(list.data).toHaveLength(1);
  });

  it.each([
    ["an unknown event type", { event_types: ["email.nope"] }, "event_types"],
    ["an empty event_types list", { event_types: [] }, "event_types"],
    ["an unknown filter", { filters: { recipient: "a@b.c" } }, "filters"],
    ["a bad topic filter", { filters: { topic: "Not A Topic" } }, "filters"],
    ["a bad tag filter", { filters: { tags: ["no spaces"] } }, "filters"],
    ["an unknown field", { secret: "whsec_x" }, "body"],
    ["a missing url", { url: undefined }, "url"],
  ])("rejects %s with 400 naming the field", async (_name, extra, param) => {
    const token = await mintToken(freshAccount(), "webhooks:write");
    const res = await call("POST", "/v1/webhooks", { token, body: { url: hookUrl(hookName()), ...extra } });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
  });

  it("allows at most 20 endpoints per account", async () => {
    const account = freshAccount();
    for (let i = 0; i < 20; i++) await createEndpoint(account, { url: hookUrl(`n${i}`) });
    const token = await mintToken(account, "webhooks:write");
    const res = await call("POST", "/v1/webhooks", { token, body: { url: hookUrl("n20") } });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error" });
    expect(
      (await json(await call("GET", "/v1/webhooks", { token: await mintToken(account, "webhooks:read") })))
        .data,
    ).toHaveLength(20);
  });

  it("validates PATCH bodies and unknown query parameters", async () => {
    const account = freshAccount();
    const ep = await createEndpoint(account, { url: hookUrl(hookName()) });
    const token = await mintToken(account, "webhooks:write webhooks:read");
    for (const [body, param] of [
      [{ status: "paused" }, "status"],
      [{ url: "ftp://x.example.com" }, "url"],
      [{ id: "whk_other" }, "body"],
    ] as const) {
      const res = await call("PATCH", `/v1/webhooks/${ep.id}`, { token, body });
      expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
    }
    const unknown = await call("GET", `/v1/webhooks/${ep.id}/deliveries?state=failed`, { token });
    expect((await json(unknown)).error).toMatchObject({ type: "validation_error", param: "state" });
    const badStatus = await call("GET", `/v1/webhooks/${ep.id}/deliveries?status=done`, { token });
    expect((await json(badStatus)).error).toMatchObject({ type: "validation_error", param: "status" });
    const notJson = await call("PATCH", `/v1/webhooks/${ep.id}`, {
      token,
      rawBody: "x",
      headers: { "content-type": "text/plain" },
    });
    expect(notJson.status).toBe(415);
  });
});

describe("webhook URL safety at the API", () => {
  /** The Worker with WEBHOOK_ALLOW_INSECURE_URLS unset, as in production. */
  async function strictCreate(url: string) {
    const token = await mintToken(freshAccount(), "webhooks:write");
    const request = new Request(`${BASE}/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ url }),
    });
    return worker.fetch(request, { ...env, WEBHOOK_ALLOW_INSECURE_URLS: "" }, createExecutionContext());
  }

  it.each([
    "http://hooks.example.com/x",
    "https://localhost/x",
    "https://127.0.0.1/x",
    "https://2130706433/x",
    "https://0x7f.1/x",
    "https://10.1.2.3/x",
    "https://192.168.0.10/x",
    "https://172.20.0.1/x",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/x",
    "https://[::1]/x",
    "https://[fd00::1]/x",
    "https://[fe80::1]/x",
    "https://[::ffff:127.0.0.1]/x",
    "https://user:pass@hooks.example.com/x",
    "not a url",
    "/relative",
  ])("refuses %s with 400 naming url", async (url) => {
    const res = await strictCreate(url);
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param: "url" });
  });

  it("accepts https to a public host", async () => {
    const res = await strictCreate("https://hooks.example.org:443/mailtrail?key=1");
    expect(res.status).toBe(201);
    expect((await json(res)).url).toBe("https://hooks.example.org/mailtrail?key=1");
    const port = await strictCreate("https://hooks.example.org:8443/mailtrail");
    expect((await json(port)).error).toMatchObject({ type: "validation_error", param: "url" });
  });

  it("with WEBHOOK_ALLOW_INSECURE_URLS=true allows http and loopback, never credentials", async () => {
    const token = await mintToken(freshAccount(), "webhooks:write");
    expect(
      (await call("POST", "/v1/webhooks", { token, body: { url: "http://127.0.0.1:9/x" } })).status,
    ).toBe(201);
    const creds = await call("POST", "/v1/webhooks", { token, body: { url: "http://u:p@127.0.0.1:9/x" } });
    expect((await json(creds)).error).toMatchObject({ type: "validation_error", param: "url" });
  });
});

describe("OpenAPI document", () => {
  it("lists every webhook route with its scope", async () => {
    const doc = await json(await call("GET", "/openapi.json"));
    for (const { method, path, scope } of ROUTES) {
      const openapiPath = path.replace(ID, "{id}");
      const op = doc.paths[openapiPath]?.[method.toLowerCase()];
      expect(op, `${method} ${openapiPath}`).toBeDefined();
      expect(op.security).toEqual([{ bearer: [scope] }]);
      expect(op.description).toContain(`Scope \`${scope}\``);
      expect(op.operationId).toEqual(expect.any(String));
    }
  });
});
