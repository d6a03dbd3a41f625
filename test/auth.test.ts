import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyApiToken } from "../src/auth/jwt";
import type { Env } from "../src/env";
import { ApiError } from "../src/lib/errors";
import { call, freshAccount, json, mintToken } from "./helpers";

async function expectAuthError(res: Response, status: number, type: string) {
  expect(res.status).toBe(status);
  const body = await json(res);
  expect(body.error.type).toBe(type);
  return body;
}

describe("bearer token authentication", () => {
  it("accepts a valid HS256 token with the scope", async () => {
    const account = freshAccount();
    const res = await call("GET", "/v1/account", { token: await mintToken(account, "events:read") });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: account, plan: "starter", retention_days: 3 });
  });

  it("rejects a request without a token", async () => {
    await expectAuthError(await call("GET", "/v1/account"), 401, "authentication_error");
  });

  it("rejects a malformed token and a non-Bearer scheme", async () => {
    await expectAuthError(
      await call("GET", "/v1/account", { token: "not.a.jwt" }),
      401,
      "authentication_error",
    );
    const basic = await call("GET", "/v1/account", { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    await expectAuthError(basic, 401, "authentication_error");
  });

  it("rejects alg none", async () => {
    const none = new UnsecuredJWT({ scope: "admin" }).setSubject("acct_x").setExpirationTime("5m").encode();
    await expectAuthError(await call("GET", "/v1/account", { token: none }), 401, "authentication_error");
  });

  it("rejects a token signed with another key", async () => {
    const token = await mintToken("acct_x", "events:read", {
      secret: "another-secret-another-secret-0123456789",
    });
    const body = await expectAuthError(
      await call("GET", "/v1/account", { token }),
      401,
      "authentication_error",
    );
    expect(body.error.message).toContain("signature");
  });

  it("rejects an expired token beyond the 60 s tolerance and accepts one within it", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await mintToken("acct_x", "events:read", { expiresIn: now - 120 });
    const body = await expectAuthError(
      await call("GET", "/v1/account", { token: expired }),
      401,
      "authentication_error",
    );
    expect(body.error.message).toContain("expired");
    const justExpired = await mintToken("acct_x", "events:read", { expiresIn: now - 30 });
    expect((await call("GET", "/v1/account", { token: justExpired })).status).toBe(200);
  });

  it("rejects a token not yet valid (nbf)", async () => {
    const token = await mintToken("acct_x", "events:read", {
      claims: { nbf: Math.floor(Date.now() / 1000) + 600 },
    });
    await expectAuthError(await call("GET", "/v1/account", { token }), 401, "authentication_error");
  });

  it("answers 403 for a valid token without the scope, and lets admin through", async () => {
    const token = await mintToken("acct_x", "suppressions:read send");
    await expectAuthError(await call("GET", "/v1/account", { token }), 403, "permission_error");
    expect((await call("GET", "/v1/account", { token: await mintToken("acct_x", "admin") })).status).toBe(
      200,
    );
  });

  it("rejects a token without exp: it would never expire", async () => {
    const token = await new SignJWT({ scope: "events:read" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("acct_x")
      .sign(new TextEncoder().encode(env.JWT_SECRET));
    await expectAuthError(await call("GET", "/v1/account", { token }), 401, "authentication_error");
  });

  it("lets admin read another account's plan, and nobody else", async () => {
    const other = freshAccount();
    const admin = await call("GET", `/v1/account?account_id=${other}`, {
      token: await mintToken("ops", "admin"),
    });
    expect(await admin.json()).toEqual({ id: other, plan: "starter", retention_days: 3 });
    const denied = await call("GET", `/v1/account?account_id=${other}`, {
      token: await mintToken("acct_x", "events:read"),
    });
    await expectAuthError(denied, 403, "permission_error");
  });

  it("rejects a token without sub", async () => {
    const token = await new SignJWT({ scope: "events:read" })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(env.JWT_SECRET));
    await expectAuthError(await call("GET", "/v1/account", { token }), 401, "authentication_error");
  });
});

describe("issuer, audience and JWKS", () => {
  afterEach(() => vi.restoreAllMocks());

  const withVars = (vars: Partial<Env>): Env => ({ ...(env as unknown as Env), ...vars });

  async function rejects(e: Env, token: string, message?: string) {
    const err = await verifyApiToken(e, token).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).type).toBe("authentication_error");
    if (message) expect((err as ApiError).message).toContain(message);
  }

  it("checks iss and aud when configured", async () => {
    const e = withVars({ JWT_ISSUER: "https://issuer.test", JWT_AUDIENCE: "mailtrail" });
    const good = await mintToken("acct_a", "events:read", {
      claims: { iss: "https://issuer.test", aud: "mailtrail" },
    });
    expect((await verifyApiToken(e, good)).accountId).toBe("acct_a");
    await rejects(
      e,
      await mintToken("acct_a", "events:read", { claims: { iss: "https://evil.test", aud: "mailtrail" } }),
      "iss",
    );
    await rejects(
      e,
      await mintToken("acct_a", "events:read", { claims: { iss: "https://issuer.test", aud: "other" } }),
      "aud",
    );
    await rejects(e, await mintToken("acct_a", "events:read"));
  });

  it("verifies RS256 and ES256 tokens against a JWKS fetched once and cached", async () => {
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const ec = await generateKeyPair("ES256", { extractable: true });
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
      { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
    ];
    const url = `https://jwks-${crypto.randomUUID()}.test/keys`;
    const fetchSpy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      expect(String(input instanceof Request ? input.url : input)).toBe(url);
      return Response.json({ keys });
    });
    const e = withVars({ JWT_JWKS_URL: url });
    const rsToken = await new SignJWT({ scope: "events:read" })
      .setProtectedHeader({ alg: "RS256", kid: "rsa-1" })
      .setSubject("acct_rs")
      .setExpirationTime("5m")
      .sign(rsa.privateKey);
    const esToken = await new SignJWT({ scope: "send" })
      .setProtectedHeader({ alg: "ES256", kid: "ec-1" })
      .setSubject("acct_es")
      .setExpirationTime("5m")
      .sign(ec.privateKey);
    expect(await verifyApiToken(e, rsToken)).toMatchObject({ accountId: "acct_rs" });
    expect(await verifyApiToken(e, esToken)).toMatchObject({ accountId: "acct_es" });
    expect(fetchSpy).toHaveBeenCalledTimes(1);

    // A key that is not in the JWKS, and a kid pointing at a key of another algorithm.
    const stranger = await generateKeyPair("RS256");
    await rejects(
      e,
      await new SignJWT({})
        .setProtectedHeader({ alg: "RS256", kid: "rsa-1" })
        .setSubject("x")
        .setExpirationTime("5m")
        .sign(stranger.privateKey),
    );
    await rejects(
      e,
      await new SignJWT({})
        .setProtectedHeader({ alg: "RS256", kid: "ec-1" })
        .setSubject("x")
        .setExpirationTime("5m")
        .sign(rsa.privateKey),
    );
  });

  it("never accepts HS256 signed with a JWKS public key (algorithm confusion)", async () => {
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const jwk = { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256" };
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => Response.json({ keys: [jwk] }));
    const e = withVars({ JWT_JWKS_URL: `https://jwks-${crypto.randomUUID()}.test/keys`, JWT_SECRET: "" });
    const forged = await new SignJWT({ scope: "admin" })
      .setProtectedHeader({ alg: "HS256", kid: "rsa-1" })
      .setSubject("acct_x")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(JSON.stringify(jwk)));
    await rejects(e, forged, "HS256");
  });

  it("answers configuration_error naming the variable, never its value", async () => {
    const e = withVars({ JWT_SECRET: "too-short-secret" });
    const err = await verifyApiToken(e, await mintToken("a", "events:read")).catch((x: unknown) => x);
    expect((err as ApiError).type).toBe("configuration_error");
    expect((err as ApiError).message).toContain("JWT_SECRET");
    expect((err as ApiError).message).not.toContain("too-short-secret");
  });
});
