import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { runImport } from "../../src/suppressions/imports";
import { call, freshAccount, json, mintToken } from "../helpers";
import { d1Rows, mirrorOf, suppressedReasons, tokensFor } from "./support";

/** SPEC §10: POST /v1/suppressions/imports, GET …/imports/{id}, GET /v1/suppressions/export. */

async function upload(token: string, body: BodyInit, type = "text/csv", query = "") {
  return call("POST", `/v1/suppressions/imports${query}`, {
    token,
    rawBody: body,
    headers: { "content-type": type },
  });
}

/** The account (`sub`) of a token minted by the helpers. */
const accountOf = (token: string) =>
  (JSON.parse(atob((token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/"))) as { sub: string })
    .sub;

/** Posts a file and waits until the background import (the real JOBS_QUEUE) is over. */
async function importFile(token: string, body: string, type = "text/csv", timeout = 20_000) {
  const res = await upload(token, body, type);
  const reader = await mintToken(accountOf(token), "suppressions:read");
  expect(res.status).toBe(202);
  const created = await json(res);
  expect(created).toMatchObject({
    object: "suppression_import",
    status: "running",
    id: expect.stringMatching(/^imp_/),
  });
  let done: Record<string, any> = created;
  await vi.waitFor(
    async () => {
      done = await json(await call("GET", `/v1/suppressions/imports/${created.id}`, { token: reader }));
      expect(done.status).not.toBe("running");
    },
    { timeout, interval: 100 },
  );
  return done;
}

describe("POST /v1/suppressions/imports", () => {
  it("imports a CSV, rejects bad rows by their line (the header is line 1), and a re-import changes nothing", async () => {
    const account = freshAccount();
    const { write, read, send } = await tokensFor(account);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    const csv = [
      "email,reason,topic,expires_at",
      "ada@example.com,hard_bounce,,",
      "not-an-address,manual,,",
      '"Bob@Example.com",unsubscribe,news,',
      "",
      "carol@example.com,angry,,",
      `dave@example.com,soft_bounce,,${future}`,
      '"eve@example.com","complaint","",""',
    ].join("\r\n");
    const done = await importFile(write, csv);
    expect(done).toMatchObject({
      status: "completed",
      rows: 6,
      accepted: 4,
      rejected: 2,
      errors: [
        { line: 3, message: "email is not a valid address" },
        { line: 6, message: expect.stringContaining("reason must be one of") },
      ],
    });
    expect(done.completed_at).not.toBeNull();
    const rows = await d1Rows(account);
    expect(rows.map((r) => [r.email, r.topic, r.reason])).toEqual([
      ["ada@example.com", "", "hard_bounce"],
      ["bob@example.com", "news", "unsubscribe"],
      ["dave@example.com", "", "soft_bounce"],
      ["eve@example.com", "", "complaint"],
    ]);
    // In KV too: check answers from it.
    expect(
      await suppressedReasons(send, ["ada@example.com", "dave@example.com", "carol@example.com"]),
    ).toEqual({
      "ada@example.com": "hard_bounce",
      "dave@example.com": "soft_bounce",
      "carol@example.com": null,
    });
    expect((await mirrorOf(account, "dave@example.com"))?.[0]?.expires_at).toBe(Date.parse(future));

    const before = await d1Rows(account);
    const changes = async () =>
      (
        await env.DB.prepare("SELECT count(*) AS n FROM suppression_changes WHERE account_id = ?1")
          .bind(account)
          .first<{ n: number }>()
      )?.n;
    const changesBefore = await changes();
    expect(changesBefore).toBe(4);
    const again = await importFile(write, csv);
    expect(again).toMatchObject({ status: "completed", rows: 6, accepted: 4, rejected: 2 });
    expect(await d1Rows(account)).toEqual(before);
    expect(await changes()).toBe(changesBefore);
    const list = await json(await call("GET", "/v1/suppressions?limit=100", { token: read }));
    expect(list.data).toHaveLength(4);
  });

  it("imports NDJSON with bad lines reported and the rest imported", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const ndjson = [
      JSON.stringify({ email: "one@example.com" }),
      "{not json",
      JSON.stringify({ email: "two@example.com", reason: "complaint", topic: "news" }),
      JSON.stringify(["not", "an", "object"]),
      JSON.stringify({ email: "three@example.com", expires_at: new Date(Date.now() + 10_000).toISOString() }),
      "",
      JSON.stringify({ email: "four@example.com", reason: "unsubscribe" }),
    ].join("\n");
    const done = await importFile(write, ndjson, "application/x-ndjson");
    expect(done).toMatchObject({
      status: "completed",
      rows: 6,
      accepted: 3,
      rejected: 3,
      errors: [
        { line: 2, message: "not valid JSON" },
        { line: 4, message: "not a JSON object" },
        { line: 5, message: expect.stringContaining("at least 60 seconds") },
      ],
    });
    expect((await d1Rows(account)).map((r) => r.email)).toEqual([
      "four@example.com",
      "one@example.com",
      "two@example.com",
    ]);
  });

  it("takes provider-export-shaped CSVs: Postmark's and Mailgun's columns and reason spellings", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const postmark = [
      "EmailAddress,SuppressionReason,Origin,CreatedAt",
      "pm.hard@example.com,HardBounce,Recipient,2024-03-01T10:00:00Z",
      "pm.spam@example.com,SpamComplaint,Recipient,2024-03-02T10:00:00Z",
      "pm.manual@example.com,ManualSuppression,Customer,2024-03-03T10:00:00Z",
    ].join("\n");
    expect(await importFile(write, postmark)).toMatchObject({
      status: "completed",
      accepted: 3,
      rejected: 0,
    });
    const mailgun = [
      "address,code,error,created_at",
      'mg@example.com,550,"No such user, sorry","Thu, 13 Oct 2011 18:02:00 +0000"',
    ].join("\n");
    expect(await importFile(write, mailgun)).toMatchObject({ status: "completed", accepted: 1 });
    const rows = await d1Rows(account);
    expect(rows.map((r) => [r.email, r.reason, r.suppressed_at])).toEqual([
      ["mg@example.com", "manual", Date.parse("2011-10-13T18:02:00Z")],
      ["pm.hard@example.com", "hard_bounce", Date.parse("2024-03-01T10:00:00Z")],
      ["pm.manual@example.com", "manual", Date.parse("2024-03-03T10:00:00Z")],
      ["pm.spam@example.com", "complaint", Date.parse("2024-03-02T10:00:00Z")],
    ]);
  });

  it("refuses another media type (415), a file without an email column (failed), and a second import at once (429)", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const wrong = await upload(write, "{}", "application/json");
    expect(wrong.status).toBe(415);
    expect((await json(wrong)).error.type).toBe("unsupported_media_type");
    const noEmail = await importFile(write, "name,reason\nada,manual\n");
    expect(noEmail).toMatchObject({
      status: "failed",
      errors: [{ line: 1, message: expect.stringContaining("no email column") }],
    });

    // Hold the lease: the first import has not run yet when the second arrives.
    const send = vi.spyOn(env.JOBS_QUEUE, "send").mockResolvedValue(undefined as never);
    try {
      const first = await upload(write, "email\nx@example.com\n");
      expect(first.status).toBe(202);
      const second = await upload(write, "email\ny@example.com\n");
      expect(second.status).toBe(429);
      expect(second.headers.get("retry-after")).toMatch(/^\d+$/);
      await runImport(env, (await json(first)).id);
    } finally {
      send.mockRestore();
    }
    const third = await upload(write, "email\nz@example.com\n");
    expect(third.status).toBe(202);
  });

  it("imports 100,000 rows", async () => {
    const account = freshAccount();
    const { write, read, send } = await tokensFor(account);
    // 100,000 rows and entries over 1,000 addresses × 100 topics: the mirror has one KV key per address,
    // and local KV takes ~8 ms a write, so 1,000 keys keep this test quick (the bench measures one key a row).
    const lines = ["email,reason,topic"];
    for (let i = 0; i < 100_000; i += 1)
      lines.push(`bulk${Math.floor(i / 100)}@example.com,${i % 2 ? "hard_bounce" : "manual"},t${i % 100}`);
    // The JOBS_QUEUE steps are exercised above; here the chunks run in-process to keep the suite quick.
    const spy = vi.spyOn(env.JOBS_QUEUE, "send").mockResolvedValue(undefined as never);
    let id: string;
    try {
      const res = await upload(write, lines.join("\n"));
      expect(res.status).toBe(202);
      id = (await json(res)).id;
    } finally {
      spy.mockRestore();
    }
    await runImport(env, id, 5000);
    const done = await json(await call("GET", `/v1/suppressions/imports/${id}`, { token: read }));
    expect(done).toMatchObject({ status: "completed", rows: 100_000, accepted: 100_000, rejected: 0 });
    const n = await env.DB.prepare("SELECT count(*) AS n FROM suppressions WHERE account_id = ?1")
      .bind(account)
      .first<{ n: number }>();
    expect(n?.n).toBe(100_000);
    expect(await suppressedReasons(send, ["bulk0@example.com", "bulk999@example.com"], "t99")).toEqual({
      "bulk0@example.com": "hard_bounce",
      "bulk999@example.com": "hard_bounce",
    });
    expect(await suppressedReasons(send, ["bulk999@example.com"], "t98")).toEqual({
      "bulk999@example.com": "manual",
    });
    expect(await suppressedReasons(send, ["bulk0@example.com"])).toEqual({ "bulk0@example.com": null });
    expect(await mirrorOf(account, "bulk5@example.com")).toHaveLength(100);
  }, 120_000);
});

describe("GET /v1/suppressions/export", () => {
  it("streams every live entry as CSV in the import's columns, and a re-import elsewhere reproduces the list", async () => {
    const account = freshAccount();
    const { write, read } = await tokensFor(account);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    await importFile(
      write,
      [
        "email,reason,topic,expires_at",
        "a@example.com,hard_bounce,,",
        "b@example.com,unsubscribe,news,",
        `c@example.com,soft_bounce,,${future}`,
      ].join("\n"),
    );
    const res = await call("GET", "/v1/suppressions/export", { token: read });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/csv");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="suppressions-.*\.csv"$/);
    const text = await res.text();
    const [header, ...rows] = text.trim().split("\n");
    expect(header).toBe("email,reason,topic,expires_at,id,email_id,suppressed_at,email_hash");
    expect(rows).toHaveLength(3);
    expect(rows[2]).toContain(future);

    const elsewhere = freshAccount();
    const other = await tokensFor(elsewhere);
    expect(await importFile(other.write, text)).toMatchObject({
      status: "completed",
      accepted: 3,
      rejected: 0,
    });
    const strip = (r: {
      email: string;
      topic: string;
      reason: string;
      email_id: string | null;
      suppressed_at: number;
    }) => [r.email, r.topic, r.reason, r.email_id, r.suppressed_at];
    expect((await d1Rows(elsewhere)).map(strip)).toEqual((await d1Rows(account)).map(strip));

    const ndjson = await call("GET", "/v1/suppressions/export?format=ndjson", { token: read });
    expect(ndjson.headers.get("content-type")).toBe("application/x-ndjson");
    const objects = (await ndjson.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(objects[1]).toMatchObject({
      email: "b@example.com",
      reason: "unsubscribe",
      topic: "news",
      expires_at: null,
    });
    const bad = await call("GET", "/v1/suppressions/export?format=xml", { token: read });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.param).toBe("format");
  });
});
