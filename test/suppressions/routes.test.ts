import { describe, expect, it } from "vitest";
import { call, freshAccount, json } from "../helpers";
import { d1Rows, insertRow, mirrorOf, suppress, tokensFor } from "./support";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("PUT /v1/suppressions/{email}", () => {
  it("adds a manual every-topic entry, lowercased, to D1 and the mirror", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const res = await call("PUT", "/v1/suppressions/Jane.Doe%40Example.COM", { token: write });
    expect(res.status).toBe(200);
    const entry = await json(res);
    expect(entry).toEqual({
      id: expect.stringMatching(/^sup_[0-9a-f]{32}$/),
      email: "jane.doe@example.com",
      reason: "manual",
      topic: null,
      email_id: null,
      suppressed_at: expect.stringMatching(ISO),
      expires_at: null,
      email_hash: null,
    });
    expect(await d1Rows(account)).toEqual([
      expect.objectContaining({ email: "jane.doe@example.com", topic: "" }),
    ]);
    expect(await mirrorOf(account, "jane.doe@example.com")).toEqual([
      { topic: null, reason: "manual", suppressed_at: Date.parse(entry.suppressed_at) },
    ]);
  });

  it("accepts an empty body labelled application/json as no body", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const res = await call("PUT", "/v1/suppressions/empty%40example.com", {
      token: write,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(200);
    expect((await json(res)).topic).toBeNull();
  });

  it("returns the existing entry unchanged when the address is already suppressed for that topic", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const first = await suppress(write, "a@example.com", "news");
    await new Promise((r) => setTimeout(r, 5));
    const again = await call("PUT", "/v1/suppressions/a@example.com", {
      token: write,
      body: { topic: "news" },
    });
    expect(again.status).toBe(200);
    expect(await json(again)).toEqual(first);
    expect(await d1Rows(account)).toHaveLength(1);
  });

  it("keeps topic entries and the every-topic entry apart", async () => {
    const account = freshAccount();
    const { write, read } = await tokensFor(account);
    const news = await suppress(write, "b@example.com", "news");
    const all = await suppress(write, "b@example.com");
    expect(news.topic).toBe("news");
    expect(all.topic).toBeNull();
    expect(news.id).not.toBe(all.id);
    const got = await json(await call("GET", "/v1/suppressions/b%40example.com", { token: read }));
    expect(got).toEqual({ object: "list", data: [all, news] });
  });

  it("accepts an explicit null topic and a JSON body with a charset", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const res = await call("PUT", "/v1/suppressions/c%40example.com", {
      token: write,
      rawBody: JSON.stringify({ topic: null }),
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(res.status).toBe(200);
    expect((await json(res)).topic).toBeNull();
  });

  it.each([
    ["/v1/suppressions/not-an-address", { topic: "news" }, "email"],
    ["/v1/suppressions/a%40b", undefined, "email"],
    ["/v1/suppressions/two%40at%40example.com", undefined, "email"],
    ["/v1/suppressions/sp%20ace%40example.com", undefined, "email"],
    ["/v1/suppressions/x%40example.com", { topic: "Has Caps" }, "topic"],
    ["/v1/suppressions/x%40example.com", { topic: "" }, "topic"],
    ["/v1/suppressions/x%40example.com", { topic: "a".repeat(65) }, "topic"],
    ["/v1/suppressions/x%40example.com", { reason: "complaint" }, "body"],
    ["/v1/suppressions/x%40example.com?topic=news", undefined, "topic"],
    ["/v1/suppressions/x%40example.com", ["news"], "body"],
  ])("PUT %s with %j is 400 naming %s", async (path, body, param) => {
    const { write } = await tokensFor(freshAccount());
    const res = await call("PUT", path, { token: write, ...(body === undefined ? {} : { body }) });
    expect(res.status).toBe(400);
    const error = (await json(res)).error;
    expect(error.type).toBe("validation_error");
    expect(error.param).toBe(param);
  });

  it("takes an empty body with a JSON content type as no body", async () => {
    const { write } = await tokensFor(freshAccount());
    const res = await call("PUT", "/v1/suppressions/e%40example.com", {
      token: write,
      rawBody: "",
      headers: { "content-type": "application/json", "content-length": "0" },
    });
    expect(res.status).toBe(200);
    expect((await json(res)).topic).toBeNull();
  });

  it("refuses a body that is not JSON (415) or not valid JSON (400)", async () => {
    const { write } = await tokensFor(freshAccount());
    const text = await call("PUT", "/v1/suppressions/x%40example.com", {
      token: write,
      rawBody: "topic=news",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(text.status).toBe(415);
    const broken = await call("PUT", "/v1/suppressions/x%40example.com", {
      token: write,
      rawBody: "{",
      headers: { "content-type": "application/json" },
    });
    expect(broken.status).toBe(400);
  });
});

describe("GET /v1/suppressions/{email}", () => {
  it("finds an address whatever its case or encoding, and 404s an unknown one", async () => {
    const account = freshAccount();
    const { write, read } = await tokensFor(account);
    await suppress(write, "x+tag@example.com");
    for (const path of ["x%2Btag%40example.com", "X%2BTAG@EXAMPLE.COM", "x+tag@example.com"]) {
      const res = await call("GET", `/v1/suppressions/${path}`, { token: read });
      expect(res.status).toBe(200);
      expect((await json(res)).data.map((e: { email: string }) => e.email)).toEqual(["x+tag@example.com"]);
    }
    const missing = await call("GET", "/v1/suppressions/nobody%40example.com", { token: read });
    expect(missing.status).toBe(404);
    expect((await json(missing)).error.type).toBe("not_found");
  });

  it("is 400 for an invalid address or an unknown parameter", async () => {
    const { read } = await tokensFor(freshAccount());
    const bad = await call("GET", "/v1/suppressions/nobody", { token: read });
    expect((await json(bad)).error).toMatchObject({ type: "validation_error", param: "email" });
    const unknown = await call("GET", "/v1/suppressions/a%40example.com?topik=x", { token: read });
    expect((await json(unknown)).error).toMatchObject({ type: "validation_error", param: "topik" });
  });
});

describe("DELETE /v1/suppressions/{email}", () => {
  it("removes one topic's entry with ?topic=, then the rest, then 404s", async () => {
    const account = freshAccount();
    const { write, read } = await tokensFor(account);
    await suppress(write, "d@example.com");
    await suppress(write, "d@example.com", "news");
    await suppress(write, "d@example.com", "promo");

    const one = await call("DELETE", "/v1/suppressions/d%40example.com?topic=news", { token: write });
    expect(one.status).toBe(200);
    expect(await json(one)).toEqual({ deleted: 1, email: "d@example.com" });
    expect((await mirrorOf(account, "d@example.com"))?.map((e) => e.topic)).toEqual([null, "promo"]);

    const again = await call("DELETE", "/v1/suppressions/d%40example.com?topic=news", { token: write });
    expect(again.status).toBe(404);

    const rest = await call("DELETE", "/v1/suppressions/D%40Example.com", { token: write });
    expect(await json(rest)).toEqual({ deleted: 2, email: "d@example.com" });
    expect(await d1Rows(account)).toEqual([]);
    expect(await mirrorOf(account, "d@example.com")).toBeNull();
    expect((await call("GET", "/v1/suppressions/d%40example.com", { token: read })).status).toBe(404);
    expect((await call("DELETE", "/v1/suppressions/d%40example.com", { token: write })).status).toBe(404);
  });

  it.each([
    ["/v1/suppressions/nope", "email"],
    ["/v1/suppressions/a%40example.com?topic=Bad!", "topic"],
    ["/v1/suppressions/a%40example.com?topic=", "topic"],
    ["/v1/suppressions/a%40example.com?reason=manual", "reason"],
    ["/v1/suppressions/a%40example.com?topic=a&topic=b", "topic"],
  ])("DELETE %s is 400 naming %s", async (path, param) => {
    const { write } = await tokensFor(freshAccount());
    const res = await call("DELETE", path, { token: write });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
  });
});

describe("GET /v1/suppressions", () => {
  async function seeded() {
    const account = freshAccount();
    const tokens = await tokensFor(account);
    const added = [];
    for (const [email, topic] of [
      ["l1@example.com", undefined],
      ["l2@example.com", "news"],
      ["l3@example.com", undefined],
      ["l4@example.com", "news"],
      ["l5@example.com", undefined],
    ] as const) {
      added.push(await suppress(tokens.write, email, topic));
      await new Promise((r) => setTimeout(r, 2));
    }
    return { account, tokens, added };
  }

  it("lists newest first in the list shape", async () => {
    const { tokens, added } = await seeded();
    const res = await call("GET", "/v1/suppressions", { token: tokens.read });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      object: "list",
      data: [...added].reverse(),
      has_more: false,
      next_cursor: null,
    });
  });

  it("pages with after, never repeating or skipping, also when entries share a timestamp", async () => {
    const account = freshAccount();
    const { read } = await tokensFor(account);
    const at = Date.now();
    for (const email of ["p1@x.com", "p2@x.com", "p3@x.com"])
      await insertRow(account, email, "", "manual", at);
    await insertRow(account, "p2@x.com", "news", "unsubscribe", at);
    await insertRow(account, "p0@x.com", "", "complaint", at - 1000);
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const query: string = `limit=2${after ? `&after=${after}` : ""}`;
      const page = await json(await call("GET", `/v1/suppressions?${query}`, { token: read }));
      pages += 1;
      seen.push(
        ...page.data.map((e: { email: string; topic: string | null }) => `${e.email}/${e.topic ?? "*"}`),
      );
      expect(page.has_more).toBe(page.next_cursor !== null);
      after = page.next_cursor;
    } while (after);
    expect(pages).toBe(3);
    expect(seen).toEqual(["p3@x.com/*", "p2@x.com/news", "p2@x.com/*", "p1@x.com/*", "p0@x.com/*"]);
  });

  it("filters by reason and topic, and binds the cursor to them", async () => {
    const { tokens, added } = await seeded();
    const news = await json(await call("GET", "/v1/suppressions?topic=news&limit=1", { token: tokens.read }));
    expect(news.data).toEqual([added[3]]);
    expect(news.has_more).toBe(true);
    const next = await json(
      await call("GET", `/v1/suppressions?topic=news&limit=1&after=${news.next_cursor}`, {
        token: tokens.read,
      }),
    );
    expect(next.data).toEqual([added[1]]);
    const rebound = await call("GET", `/v1/suppressions?after=${news.next_cursor}`, { token: tokens.read });
    expect((await json(rebound)).error).toMatchObject({ type: "validation_error", param: "after" });

    const manual = await json(
      await call("GET", "/v1/suppressions?reason=manual&limit=1000", { token: tokens.read }),
    );
    expect(manual.data).toHaveLength(5);
    const bounces = await json(
      await call("GET", "/v1/suppressions?reason=hard_bounce", { token: tokens.read }),
    );
    expect(bounces.data).toEqual([]);
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=ten", "limit"],
    ["limit=-1", "limit"],
    ["reason=bounce", "reason"],
    ["topic=NEWS", "topic"],
    ["after=not-a-cursor", "after"],
    ["after=", "after"],
    ["recipient=a%40b.com", "recipient"],
    ["limit=5&limit=6", "limit"],
  ])("?%s is 400 naming %s", async (query, param) => {
    const { read } = await tokensFor(freshAccount());
    const res = await call("GET", `/v1/suppressions?${query}`, { token: read });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
  });

  it("is documented in /openapi.json", async () => {
    const doc = await json(await call("GET", "/openapi.json"));
    expect(Object.keys(doc.paths["/v1/suppressions/{email}"]).sort()).toEqual(["delete", "get", "put"]);
    expect(doc.paths["/v1/suppressions/check"].post.requestBody).toBeTruthy();
    expect(doc.paths["/v1/suppressions"].get.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(["limit", "after", "reason", "topic"]),
    );
    expect(doc.components.schemas.Suppression.required).toEqual(
      expect.arrayContaining(["id", "email", "reason", "topic", "email_id", "suppressed_at"]),
    );
  });
});
