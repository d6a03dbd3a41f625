import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyApiToken } from "../../src/auth/jwt";
import type { Env } from "../../src/env";
import { ApiError } from "../../src/lib/errors";
import { call, consume, event, eventMessage, execOnShards, freshAccount, json, mintToken } from "../helpers";

/** Finding 7: a dependency failure is 503 unavailable; a forged cursor number is 400. */

afterEach(() => vi.restoreAllMocks());

describe("a D1 failure on an API request", () => {
  it("answers 503 unavailable in the §4 shape, with Retry-After, for events and suppressions", async () => {
    const account = freshAccount();
    const token = await mintToken(account, "events:read suppressions:read");
    await execOnShards("ALTER TABLE events RENAME TO events_away");
    await execOnShards("ALTER TABLE suppressions RENAME TO suppressions_away");
    let events: Response;
    let suppressions: Response;
    try {
      events = await call("GET", "/v1/events", { token });
      suppressions = await call("GET", "/v1/suppressions", { token });
    } finally {
      await execOnShards("ALTER TABLE events_away RENAME TO events");
      await execOnShards("ALTER TABLE suppressions_away RENAME TO suppressions");
    }
    for (const res of [events, suppressions]) {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("5");
      const body = await json(res);
      expect(body.error.type).toBe("unavailable");
      // Nothing of the SQL or the table leaks.
      expect(JSON.stringify(body)).not.toMatch(/events_away|SQLITE|D1_/);
    }
    expect((await call("GET", "/v1/events", { token })).status).toBe(200);
  });
});

describe("a JWKS that cannot be fetched", () => {
  const withVars = (vars: Partial<Env>): Env => ({ ...(env as unknown as Env), ...vars });

  async function rsToken() {
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const jwk = { ...(await exportJWK(rsa.publicKey)), kid: "k1", alg: "RS256" };
    const token = await new SignJWT({ scope: "events:read" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setSubject("acct_jwks")
      .setExpirationTime("5m")
      .sign(rsa.privateKey);
    return { jwk, token };
  }

  it.each([
    [
      "a network error",
      async () => {
        throw new TypeError("Network connection lost");
      },
    ],
    ["a 500 answer", async () => new Response("oops", { status: 500 })],
    ["a body that is not JSON", async () => new Response("<html>", { status: 200 })],
  ])("is 503 unavailable on %s, not 401", async (_name, answer) => {
    const { token } = await rsToken();
    vi.spyOn(globalThis, "fetch").mockImplementation(answer);
    const e = withVars({ JWT_JWKS_URL: `https://jwks-${crypto.randomUUID()}.test/keys` });
    const err = await verifyApiToken(e, token).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).type).toBe("unavailable");
    expect((err as ApiError).status).toBe(503);
  });

  it("still answers 401 for a token whose key is not in a JWKS that was fetched", async () => {
    const { jwk } = await rsToken();
    const { token } = await rsToken(); // signed by another key with the same kid
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => Response.json({ keys: [jwk] }));
    const e = withVars({ JWT_JWKS_URL: `https://jwks-${crypto.randomUUID()}.test/keys` });
    const err = await verifyApiToken(e, token).catch((x: unknown) => x);
    expect((err as ApiError).type).toBe("authentication_error");
  });
});

/** A cursor is base64url JSON: a client can edit its numbers. */
function editCursor(cursor: string, edit: (body: Record<string, unknown>) => void): string {
  const text = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  const body = JSON.parse(text) as Record<string, unknown>;
  edit(body);
  return btoa(JSON.stringify(body)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

describe("a cursor carrying a number D1 cannot bind", () => {
  it("is 400 naming after on GET /v1/events", async () => {
    const account = freshAccount();
    await consume([
      eventMessage(event({ account_id: account, occurred_at: Date.now() - 2000 })),
      eventMessage(event({ account_id: account, occurred_at: Date.now() - 1000 })),
    ]);
    const token = await mintToken(account, "events:read");
    const first = await json(await call("GET", "/v1/events?limit=1", { token }));
    expect(first.next_cursor).toEqual(expect.any(String));
    for (const [field, value] of [
      ["t", 1e300],
      ["s", 1e300],
      ["e", -1],
      ["t", 1.5],
    ] as const) {
      const forged = editCursor(first.next_cursor, (b) => {
        b[field] = value;
      });
      const res = await call("GET", `/v1/events?limit=1&after=${forged}`, { token });
      expect(res.status, `${field}=${value}`).toBe(400);
      const body = await json(res);
      expect(body.error).toMatchObject({ type: "validation_error", param: "after" });
    }
  });

  it("is 400 naming after on GET /v1/suppressions", async () => {
    const account = freshAccount();
    const token = await mintToken(account, "suppressions:read suppressions:write");
    for (const email of ["a@example.com", "b@example.com"]) {
      expect((await call("PUT", `/v1/suppressions/${encodeURIComponent(email)}`, { token })).status).toBe(
        200,
      );
    }
    const first = await json(await call("GET", "/v1/suppressions?limit=1", { token }));
    const forged = editCursor(first.next_cursor, (b) => {
      b.t = 1e300;
    });
    const res = await call("GET", `/v1/suppressions?limit=1&after=${forged}`, { token });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param: "after" });
  });
});
