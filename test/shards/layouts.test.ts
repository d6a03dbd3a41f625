import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { handleWebhookBatch } from "../../src/webhooks/deliver";
import type { WebhookMessage } from "../../src/webhooks/messages";
import { BASE, freshAccount, mintToken } from "../helpers";
import { hookName, hookUrl } from "../webhooks/support";
import { layoutData } from "./data";

/**
 * SPEC §17 "Everything works the same on any layout": the same data stored three ways — a
 * one-shard deployment (only EVENTS_0 bound, EVENT_SHARDS=0), hashed over 4 shards, and striped
 * over 3 — answers every read route identically, page by page to the end.
 */

type Layout = "one shard" | "hashed over 4" | "striped over 3";
const LAYOUTS: Layout[] = ["one shard", "hashed over 4", "striped over 3"];

/** A single-shard deployment: the other shards unbound. */
const oneShardEnv = {
  ...env,
  EVENT_SHARDS: "0",
  EVENTS_1: undefined,
  EVENTS_2: undefined,
  EVENTS_3: undefined,
} as Env;

interface Stored {
  layout: Layout;
  account: string;
  env: Env;
  endpoint: string;
  token: string;
}

async function request(target: Env, method: string, path: string, token: string, body?: unknown) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`${BASE}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    }),
    target,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

let batchSeq = 0;
async function queue(target: Env, name: string, bodies: unknown[]) {
  batchSeq += 1;
  const batch = createMessageBatch<unknown>(
    name,
    bodies.map((body, i) => ({ id: `layout-${batchSeq}-${i}`, timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  if (name === "mailtrail-webhooks") await handleWebhookBatch(batch, target, { now: () => Date.now() });
  else await worker.queue(batch, target, ctx);
  return getQueueResult(batch, ctx);
}

async function store(layout: Layout): Promise<Stored> {
  const account = freshAccount(layout.replaceAll(" ", "").slice(0, 8));
  const target = layout === "one shard" ? oneShardEnv : (env as Env);
  const admin = await mintToken("operator", "admin");
  if (layout === "striped over 3") {
    const res = await request(target, "PUT", `/v1/admin/placements/${account}`, admin, { shards: [1, 2, 3] });
    expect(res.status).toBe(200);
  }
  expect((await request(target, "PUT", `/v1/accounts/${account}`, admin, { plan: "scale" })).status).toBe(
    200,
  );
  const token = await mintToken(
    account,
    "events:read suppressions:read suppressions:write send webhooks:read webhooks:write",
  );
  const data = layoutData(account);
  for (let i = 0; i < data.messages.length; i += 50) {
    const batch = data.messages.slice(i, i + 50);
    const result = await queue(target, "mailtrail-events", batch);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(batch.length);
  }
  const counted = await request(target, "GET", "/v1/events?days=30&limit=1&count=true", token);
  expect(((await counted.json()) as { total: number }).total).toBe(data.events.length);
  for (const email of data.manualSuppressions) {
    const res = await request(target, "PUT", `/v1/suppressions/${encodeURIComponent(email)}`, token, {});
    expect(res.status).toBe(200);
  }
  // An entry with an expiry (the same instant in every layout).
  const expiring = await request(target, "PUT", "/v1/suppressions/expiring%40example.com", token, {
    expires_at: new Date(EXPIRES_AT).toISOString(),
  });
  expect(expiring.status).toBe(200);
  const created = await request(target, "POST", "/v1/webhooks", token, { url: hookUrl(hookName()) });
  expect(created.status).toBe(201);
  const endpoint = ((await created.json()) as { id: string }).id;
  const deliveries: WebhookMessage[] = data.events.map((e) => ({
    type: "deliver",
    account_id: account,
    endpoint_id: endpoint,
    event_id: e.id,
    occurred_at: e.occurred_at,
  }));
  for (let i = 0; i < deliveries.length; i += 20)
    await queue(target, "mailtrail-webhooks", deliveries.slice(i, i + 20));
  return { layout, account, env: target, endpoint, token };
}

const startedAt = Date.now();
const EXPIRES_AT = Math.ceil((startedAt + 30 * 86_400_000) / 86_400_000) * 86_400_000;

/**
 * The answer with what names the account or its endpoint made neutral; cursors only say whether
 * there is one; suppression and delivery ids (derived from keys that hold the account or endpoint) are neutral; times of this run's own requests (manual suppressions) are "RECENT".
 */
function neutral(s: Stored, value: unknown): unknown {
  const text = JSON.stringify(value)
    .replaceAll(s.account, "ACCOUNT")
    .replaceAll(s.endpoint, "ENDPOINT")
    .replace(/"(next_cursor|next)":"[^"]+"/g, '"$1":"CURSOR"')
    // Suppression ids are derived from the account's key.
    .replace(/"(sup|wdl)_[0-9a-f]+"/g, '"$1"')
    .replace(/"(\d{4}-\d\d-\d\dT[\d:.]+Z)"/g, (all, iso: string) =>
      Date.parse(iso) >= startedAt ? '"RECENT"' : all,
    )
    // A window the server takes from its own clock (reputation's `days`, Unosend's `period`) starts
    // on the quarter hour or the UTC day before it: a boundary may pass between two layouts' reads.
    .replace(/"start":"\d{4}-\d\d-\d\dT[\d:.]+Z"/g, '"start":"WINDOW"');
  return JSON.parse(text);
}

/** Follows a route's paging to the end, collecting every page's answer. */
async function allPages(
  s: Stored,
  first: string,
  nextOf: (body: any, path: string, page: number) => string | null,
): Promise<unknown[]> {
  const pages: unknown[] = [];
  let path: string | null = first;
  for (let page = 1; path && page < 200; page++) {
    const res = await request(s.env, "GET", path, s.token);
    const body = await res.json();
    expect(res.status, `${s.layout} ${path}: ${JSON.stringify(body)}`).toBe(200);
    pages.push(neutral(s, body));
    path = nextOf(body, path, page);
  }
  return pages;
}

const withAfter = (base: string) => (body: any) =>
  body.has_more
    ? `${base}${base.includes("?") ? "&" : "?"}after=${encodeURIComponent(body.next_cursor)}`
    : null;

const stored: Stored[] = [];
beforeAll(async () => {
  for (const layout of LAYOUTS) stored.push(await store(layout));
}, 120_000);

/**
 * The explicit window of the metrics reads: 20 days to the next whole hour after the seeding, fixed
 * once, so that the three layouts' reads ask the same question even when an hour passes between them.
 */
let fixedWindow: string | undefined;
const window = () => {
  if (fixedWindow === undefined) {
    const end = new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000).toISOString();
    fixedWindow = `start=${new Date(Date.parse(end) - 20 * 86_400_000).toISOString()}&end=${end}`;
  }
  return fixedWindow;
};

/** Every read route: a name and how to read it whole for one stored layout. */
const READS: [string, (s: Stored) => Promise<unknown>][] = [
  [
    "GET /v1/events, every page",
    (s) =>
      allPages(
        s,
        `/v1/events?${window()}&limit=7&count=true`,
        withAfter(`/v1/events?${window()}&limit=7&count=true`),
      ),
  ],
  [
    "GET /v1/events?event_type=email.opened",
    (s) =>
      allPages(
        s,
        `/v1/events?${window()}&limit=3&event_type=email.opened`,
        withAfter(`/v1/events?${window()}&limit=3&event_type=email.opened`),
      ),
  ],
  [
    "GET /v1/events?campaign=spring",
    (s) =>
      allPages(
        s,
        `/v1/events?${window()}&limit=5&campaign=spring`,
        withAfter(`/v1/events?${window()}&limit=5&campaign=spring`),
      ),
  ],
  [
    "GET /v1/events?email_id=",
    (s) =>
      allPages(
        s,
        `/v1/events?${window()}&limit=2&email_id=email_layout_0003`,
        withAfter(`/v1/events?${window()}&limit=2&email_id=email_layout_0003`),
      ),
  ],
  [
    "GET /v1/events?recipient=",
    (s) =>
      allPages(
        s,
        `/v1/events?${window()}&limit=2&recipient=reader1%40example.com`,
        withAfter(`/v1/events?${window()}&limit=2&recipient=reader1%40example.com`),
      ),
  ],
  [
    "GET /v1/events?domain=",
    (s) =>
      allPages(
        s,
        `/v1/events?${window()}&limit=9&domain=mail.example.com`,
        withAfter(`/v1/events?${window()}&limit=9&domain=mail.example.com`),
      ),
  ],
  [
    "GET /v1/events/export (ndjson and csv)",
    async (s) => {
      const out: string[] = [];
      for (const format of ["ndjson", "csv"]) {
        const res = await request(s.env, "GET", `/v1/events/export?${window()}&format=${format}`, s.token);
        expect(res.status).toBe(200);
        out.push((await res.text()).replaceAll(s.account, "ACCOUNT"));
      }
      return out;
    },
  ],
  ["GET /v1/metrics", (s) => allPages(s, `/v1/metrics?${window()}&group_by=campaign`, () => null)],
  [
    "GET /v1/metrics hourly by tag",
    (s) => allPages(s, `/v1/metrics?${window()}&interval=hour&group_by=tag`, () => null),
  ],
  ["GET /v1/metrics/links", (s) => allPages(s, `/v1/metrics/links?${window()}&limit=50`, () => null)],
  ["GET /v1/reputation", (s) => allPages(s, "/v1/reputation?days=30", () => null)],
  ["Unosend metrics", (s) => allPages(s, "/compat/unosend/v1/metrics?days=30&group_by=campaign", () => null)],
  [
    "Unosend metrics/links",
    (s) => allPages(s, "/compat/unosend/v1/metrics/links?days=30&limit=100", () => null),
  ],
  [
    "Unosend suppressions, every page",
    (s) =>
      allPages(s, "/compat/unosend/v1/suppressions?per_page=2&page=1", (body, _p, page) =>
        page < body.meta.pages ? `/compat/unosend/v1/suppressions?per_page=2&page=${page + 1}` : null,
      ),
  ],
  [
    "SparkPost events, every page",
    (s) =>
      allPages(
        s,
        `/compat/sparkpost/api/v1/events/message?from=${new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 16)}&per_page=4`,
        (body) =>
          body.links?.next ? `/compat/sparkpost${body.links.next.replace(/^\/compat\/sparkpost/, "")}` : null,
      ).then((pages) => pages.map((p: any) => ({ ...p, links: p.links?.next ? "next" : "end" }))),
  ],
  [
    "Numonic events, every page",
    (s) =>
      allPages(s, "/compat/numonic/api/v1/events?limit=3&page=1", (body, _p, page) =>
        page < body.data.pagination.total_pages
          ? `/compat/numonic/api/v1/events?limit=3&page=${page + 1}`
          : null,
      ),
  ],
  [
    "Numonic suppressions, every page",
    (s) =>
      allPages(s, "/compat/numonic/api/v1/suppression?limit=2&page=1", (body, _p, page) =>
        page < body.pagination.total_pages
          ? `/compat/numonic/api/v1/suppression?limit=2&page=${page + 1}`
          : null,
      ),
  ],
  [
    "Unosend events, every page",
    (s) =>
      allPages(s, "/compat/unosend/api/v1/events?limit=4&offset=0&days=10", (body, _p, page) =>
        body.data.pagination.has_more
          ? `/compat/unosend/api/v1/events?limit=4&offset=${page * 4}&days=10`
          : null,
      ),
  ],
  [
    "webhook deliveries, every page",
    (s) =>
      allPages(
        s,
        `/v1/webhooks/${s.endpoint}/deliveries?limit=4`,
        withAfter(`/v1/webhooks/${s.endpoint}/deliveries?limit=4`),
      ),
  ],
  [
    "webhook replay (ids and window)",
    async (s) => {
      const ids = await request(s.env, "POST", `/v1/webhooks/${s.endpoint}/replay`, s.token, {
        event_ids: ["evt_layout0002delivered", "evt_layout0008opened", "evt_missing0000"],
      });
      const range = await request(s.env, "POST", `/v1/webhooks/${s.endpoint}/replay`, s.token, {
        start: new Date(Date.now() - 3 * 86_400_000).toISOString(),
        end: new Date().toISOString(),
        event_type: "email.clicked",
      });
      return [ids.status, await ids.json(), range.status, await range.json()];
    },
  ],
  [
    "GET /v1/suppressions, every page",
    (s) => allPages(s, "/v1/suppressions?limit=2", withAfter("/v1/suppressions?limit=2")),
  ],
  [
    "GET /v1/suppressions/export (ndjson, and csv's rows)",
    async (s) => {
      const ndjson = await request(s.env, "GET", "/v1/suppressions/export?format=ndjson", s.token);
      expect(ndjson.status).toBe(200);
      const entries = (await ndjson.text())
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line));
      const csv = await request(s.env, "GET", "/v1/suppressions/export?format=csv", s.token);
      expect(csv.status).toBe(200);
      const rows = (await csv.text()).trim().split("\n");
      return neutral(s, [entries, rows.length, rows[0]]);
    },
  ],
  [
    "GET /v1/suppressions/{email} and check",
    async (s) => {
      const one = await request(s.env, "GET", "/v1/suppressions/reader0%40example.com", s.token);
      const none = await request(s.env, "GET", "/v1/suppressions/nobody%40example.com", s.token);
      const check = await request(s.env, "POST", "/v1/suppressions/check", s.token, {
        emails: [
          "reader0@example.com",
          "reader1@example.com",
          "reader2@example.com",
          "manual@example.com",
          "expiring@example.com",
          "nobody@example.com",
        ],
        topic: "news",
      });
      return neutral(s, [one.status, await one.json(), none.status, check.status, await check.json()]);
    },
  ],
];

describe("the same data on one shard, hashed over 4, and striped over 3", () => {
  it("is stored where each layout puts it", async () => {
    const striped = stored.find((s) => s.layout === "striped over 3")!;
    const shardsHolding: number[] = [];
    for (const i of [0, 1, 2, 3]) {
      const n = await (env as Env)
        [`EVENTS_${i}`]!.prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
        .bind(striped.account)
        .first<number>("n");
      if (n) shardsHolding.push(i);
    }
    expect(shardsHolding).toEqual([1, 2, 3]);
    const one = stored.find((s) => s.layout === "one shard")!;
    const onZero = await env
      .EVENTS_0!.prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(one.account)
      .first<number>("n");
    expect(onZero).toBeGreaterThan(50);
  });

  it.each(READS)("%s answers identically", async (_name, read) => {
    const [one, hashed, striped] = [await read(stored[0]!), await read(stored[1]!), await read(stored[2]!)];
    expect(JSON.stringify(one)).not.toBe("[]");
    expect(hashed).toEqual(one);
    expect(striped).toEqual(one);
  });
});
