import { parse } from "csv-parse/sync";
import { describe, expect, it } from "vitest";
import { CSV_COLUMNS, csvField, exportFileName } from "../src/events/export";
import type { EventRecord } from "../src/events/record";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "./helpers";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The body as UTF-8 (Response.text() warns on application/x-ndjson in workerd). */
const readText = async (res: Response) => new TextDecoder().decode(await res.arrayBuffer());

async function seed(records: EventRecord[]) {
  for (let i = 0; i < records.length; i += 100)
    await consume(records.slice(i, i + 100).map((e) => eventMessage(e)));
}

/** Every page of GET /v1/events for a query, followed to the end. */
async function allPages(token: string, query: string) {
  const events: Record<string, unknown>[] = [];
  let after: string | null = null;
  for (;;) {
    const qs = `${query}${query ? "&" : ""}limit=1000${after ? `&after=${encodeURIComponent(after)}` : ""}`;
    const res = await call("GET", `/v1/events?${qs}`, { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    events.push(...body.data);
    if (!body.has_more) return events;
    after = body.next_cursor;
  }
}

/** A §8 event as its CSV row should read: every value a string, null empty. */
function asCsvRow(e: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const column of CSV_COLUMNS) {
    const v = e[column];
    out[column] =
      v === null
        ? ""
        : column === "tags"
          ? (v as string[]).join(",")
          : typeof v === "object"
            ? JSON.stringify(v)
            : String(v);
  }
  return out;
}

const TRICKY_SUBJECT = 'Hello, "friend"\r\nline two\nÉté — 夏 🎉';

function dataset(account: string, now: number): EventRecord[] {
  const types = ["email.delivered", "email.opened", "email.clicked", "email.bounced"] as const;
  const records: EventRecord[] = [];
  for (let i = 0; i < 2300; i++) {
    const type = types[i % types.length] ?? "email.delivered";
    records.push(
      event({
        account_id: account,
        type,
        occurred_at: now - 60_000 - i * 20_000,
        email_id: `email_${i % 50}`,
        recipient: `r${i % 70}@example.com`,
        subject: i % 7 === 0 ? TRICKY_SUBJECT : `Subject ${i}`,
        campaign: i % 3 === 0 ? "spring,sale" : "autumn",
        tags: i % 5 === 0 ? ["a", "b-c"] : [],
        smtp_code: type === "email.bounced" ? 550 : null,
        smtp_response: type === "email.bounced" ? '550 5.1.1 "user" unknown, sorry' : null,
        bounce_type: type === "email.bounced" ? "permanent" : null,
        tracking:
          type === "email.opened" || type === "email.clicked"
            ? {
                user_agent: 'Mozilla/5.0 (X11; "quoted")',
                ip_address: "203.0.113.7",
                url: type === "email.clicked" ? "https://example.com/a?b=1,2" : null,
                link_name: null,
                geo: { country: "FR", region: "Île-de-France", city: "Paris" },
                bot: null,
              }
            : null,
      }),
    );
  }
  return records;
}

describe("export helpers", () => {
  it.each([
    ["plain", "plain"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ["line\nbreak", '"line\nbreak"'],
    ["cr\rlf", '"cr\rlf"'],
    ["Été 夏", "Été 夏"],
    ["", ""],
  ])("csvField(%j) is %j", (value, field) => {
    expect(csvField(value)).toBe(field);
  });

  it("names the file after the account and the window, safely", () => {
    const window = { start: "2026-04-09T10:30:09.000Z", end: "2026-04-10T00:00:00.000Z", clamped: false };
    expect(exportFileName("acct_1", window, "csv")).toBe(
      "mailtrail-events-acct_1-20260409T103009Z-20260410T000000Z.csv",
    );
    expect(exportFileName('a"b/c', window, "ndjson")).toMatch(/^mailtrail-events-a_b_c-/);
  });
});

describe("GET /v1/events/export", () => {
  const account = freshAccount();
  const now = Date.now();
  let token: string;
  const ready = (async () => {
    await seed(dataset(account, now));
    // Outside the starter plan's 3 days: clamped away from the file as from the API.
    await seed([event({ account_id: account, occurred_at: now - 5 * DAY, subject: "old" })]);
    token = await mintToken(account, "events:read");
  })();

  it("streams NDJSON equal, line by line, to the API's pages", async () => {
    await ready;
    const res = await call("GET", "/v1/events/export?days=30", { token });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    expect(res.headers.get("content-disposition")).toMatch(
      new RegExp(
        `^attachment; filename="mailtrail-events-${account}-\\d{8}T\\d{6}Z-\\d{8}T\\d{6}Z\\.ndjson"$`,
      ),
    );
    const text = await readText(res);
    expect(text.endsWith("\n")).toBe(true);
    const lines = text
      .slice(0, -1)
      .split("\n")
      .map((l) => JSON.parse(l));
    const expected = await allPages(token, "days=30");
    expect(expected).toHaveLength(2300);
    expect(lines).toEqual(expected);
    expect(lines.some((e) => e.subject === "old")).toBe(false);
  });

  it("streams CSV that a CSV parser reads back equal to the API's pages", async () => {
    await ready;
    const res = await call("GET", "/v1/events/export?days=30&format=csv", { token });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv; charset=utf-8/);
    expect(res.headers.get("content-disposition")).toMatch(/\.csv"$/);
    const bytes = new Uint8Array(await res.arrayBuffer());
    // UTF-8, no byte-order mark.
    expect([...bytes.slice(0, 3)]).not.toEqual([0xef, 0xbb, 0xbf]);
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    expect(text.split("\r\n", 1)[0]).toBe(CSV_COLUMNS.join(","));
    const rows = parse(text, { columns: true, bom: false, relax_quotes: false }) as Record<string, string>[];
    const expected = (await allPages(token, "days=30")).map(asCsvRow);
    expect(rows).toEqual(expected);
    const tricky = rows.find((r) => r.subject === TRICKY_SUBJECT);
    expect(tricky?.campaign).toBe("spring,sale");
    expect(rows.find((r) => r.tags === "a,b-c")).toBeDefined();
    // The quoting itself: RFC 4180 doubles quotes inside a quoted field.
    expect(text).toContain('"Hello, ""friend""\r\nline two\nÉté — 夏 🎉"');
  });

  it("applies the filters of GET /v1/events", async () => {
    await ready;
    const query = "days=30&event_type=email.bounced,email.clicked&campaign=autumn&recipient=R3%40example.com";
    const expected = await allPages(token, query);
    expect(expected.length).toBeGreaterThan(0);
    const ndjson = await readText(await call("GET", `/v1/events/export?${query}`, { token }));
    expect(
      ndjson
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual(expected);
    const csv = await (await call("GET", `/v1/events/export?${query}&format=csv`, { token })).text();
    expect(parse(csv, { columns: true })).toEqual(expected.map(asCsvRow));
  });

  it("streams: the body arrives in several chunks, one per page read", async () => {
    await ready;
    const res = await call("GET", "/v1/events/export?days=30", { token });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let chunks = 0;
    let lines = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks += 1;
      lines += value.filter((b) => b === 10).length;
    }
    expect(lines).toBe(2300);
    expect(chunks).toBeGreaterThanOrEqual(3);
  });

  it("answers an empty window with an empty NDJSON file and a CSV header only", async () => {
    await ready;
    const other = freshAccount();
    const t = await mintToken(other, "events:read");
    const nd = await call("GET", "/v1/events/export", { token: t });
    expect(nd.status).toBe(200);
    expect(await readText(nd)).toBe("");
    const csv = await call("GET", "/v1/events/export?format=csv", { token: t });
    expect(await csv.text()).toBe(`${CSV_COLUMNS.join(",")}\r\n`);
  });

  it.each([
    ["format=xml", "format"],
    ["format=csv&format=ndjson", "format"],
    ["limit=10", "limit"],
    ["after=abc", "after"],
    ["count=true", "count"],
    ["start=yesterday", "start"],
    ["days=91", "days"],
    ["event_type=email.nope", "event_type"],
    ["colour=red", "colour"],
    ["domain=never.example.com", "domain"],
  ])("refuses %s with a 400 naming %s before any byte", async (query, param) => {
    await ready;
    const res = await call("GET", `/v1/events/export?${query}`, { token });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("content-disposition")).toBeNull();
    expect(await json(res)).toMatchObject({ error: { type: "validation_error", param } });
  });

  it("requires events:read and keeps accounts apart", async () => {
    await ready;
    expect((await call("GET", "/v1/events/export")).status).toBe(401);
    const forged = await mintToken(account, "events:read", {
      secret: "another-secret-another-secret-0123456789",
    });
    expect((await call("GET", "/v1/events/export", { token: forged })).status).toBe(401);
    const wrongScope = await mintToken(account, "send");
    expect((await call("GET", "/v1/events/export", { token: wrongScope })).status).toBe(403);
    const intruder = await mintToken(freshAccount(), "events:read");
    const res = await call("GET", `/v1/events/export?days=30&account_id=${account}`, { token: intruder });
    expect(res.status).toBe(403);
    // Their own export holds none of this account's events.
    expect(await readText(await call("GET", "/v1/events/export?days=30", { token: intruder }))).toBe("");
    const admin = await mintToken("ops", "admin");
    const asAdmin = await call("GET", `/v1/events/export?days=30&account_id=${account}`, { token: admin });
    expect((await readText(asAdmin)).trim().split("\n")).toHaveLength(2300);
  });
});
