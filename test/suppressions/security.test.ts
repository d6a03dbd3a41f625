import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, freshAccount, json, mintToken } from "../helpers";
import { d1Rows, suppress, suppressedReasons, tokensFor } from "./support";

// The token, scope and account cases of every route are in test/shared/security.test.ts.

describe("account isolation", () => {
  it("one account can neither see, add to, nor delete from another's list, nor check against it", async () => {
    const alice = freshAccount("alice");
    const bob = freshAccount("bob");
    const a = await tokensFor(alice);
    const b = await tokensFor(bob);
    const aliceEntry = await suppress(a.write, "shared@example.com");
    await suppress(a.write, "only-alice@example.com", "news");

    const bobList = await json(await call("GET", "/v1/suppressions?limit=1000", { token: b.read }));
    expect(bobList.data).toEqual([]);
    expect((await call("GET", "/v1/suppressions/shared%40example.com", { token: b.read })).status).toBe(404);
    expect((await call("DELETE", "/v1/suppressions/shared%40example.com", { token: b.write })).status).toBe(
      404,
    );
    expect(await suppressedReasons(b.send, ["shared@example.com", "only-alice@example.com"], "news")).toEqual(
      {
        "shared@example.com": null,
        "only-alice@example.com": null,
      },
    );

    // Bob's own entry for the same address is his alone: Alice's stays exactly as it was.
    const bobEntry = await suppress(b.write, "shared@example.com", "promo");
    expect(bobEntry.id).not.toBe(aliceEntry.id);
    expect(await d1Rows(alice, "shared@example.com")).toEqual([
      expect.objectContaining({ topic: "", reason: "manual" }),
    ]);
    expect((await call("DELETE", "/v1/suppressions/shared%40example.com", { token: b.write })).status).toBe(
      200,
    );
    expect(await d1Rows(alice, "shared@example.com")).toHaveLength(1);
    expect(await suppressedReasons(a.send, ["shared@example.com"])).toEqual({
      "shared@example.com": "manual",
    });

    // Admin scope of another account does not switch accounts silently either.
    const aliceList = await json(await call("GET", "/v1/suppressions", { token: a.read }));
    expect(aliceList.data.map((e: { email: string }) => e.email).sort()).toEqual([
      "only-alice@example.com",
      "shared@example.com",
    ]);
  });

  it("an admin token acts for the account named by account_id, in the query or the body", async () => {
    const target = freshAccount("target");
    const admin = await mintToken(freshAccount("ops"), "admin");
    const put = await call("PUT", `/v1/suppressions/ops%40example.com?account_id=${target}`, {
      token: admin,
    });
    expect(put.status).toBe(200);
    const viaBody = await call("PUT", "/v1/suppressions/ops%40example.com", {
      token: admin,
      body: { topic: "news", account_id: target },
    });
    expect(viaBody.status).toBe(200);
    expect(await d1Rows(target)).toHaveLength(2);
    const list = await json(await call("GET", `/v1/suppressions?account_id=${target}`, { token: admin }));
    expect(list.data).toHaveLength(2);
    const checked = await json(
      await call("POST", "/v1/suppressions/check", {
        token: admin,
        body: { emails: ["ops@example.com"], account_id: target },
      }),
    );
    expect(checked.data).toEqual([{ email: "ops@example.com", suppressed: true, reason: "manual" }]);
    const conflict = await call("PUT", `/v1/suppressions/ops%40example.com?account_id=${target}`, {
      token: admin,
      body: { account_id: freshAccount() },
    });
    expect((await json(conflict)).error).toMatchObject({ type: "validation_error", param: "account_id" });
    const del = await call("DELETE", `/v1/suppressions/ops%40example.com?account_id=${target}`, {
      token: admin,
    });
    expect(await json(del)).toEqual({ deleted: 2, email: "ops@example.com" });
  });

  it("an account id containing ':' keeps its own mirror keys", async () => {
    const account = `org:${freshAccount()}`;
    const tokens = await tokensFor(account);
    await suppress(tokens.write, "colon@example.com");
    expect(await suppressedReasons(tokens.send, ["colon@example.com"])).toEqual({
      "colon@example.com": "manual",
    });
    // Percent-encoded, so the first ':' after the prefix always ends the account and keys never collide.
    expect(await env.SUPPRESSIONS.get(`sup:org%3A${account.slice(4)}:colon@example.com`)).not.toBeNull();
    expect(await env.SUPPRESSIONS.get(`sup:${account}:colon@example.com`)).toBeNull();
  });
});
