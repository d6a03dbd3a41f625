// `node bench/run.mjs --self-test`: the benchmark's own code paths on tiny data, without workerd,
// in a couple of seconds. It checks the data generator against the schema in migrations/ and the
// bench Worker's loader, the statistics, the cost math, the direct-SQL baselines, the query cases,
// the shard simulation and the progress output.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { costPerMillion, eventsPerDay, PRICES } from "./lib/cost.mjs";
import { directPageSql } from "./lib/direct-sql.mjs";
import {
  accountMessages,
  buildUniverse,
  EVENT_COLUMNS,
  jsonChunks,
  syntheticEvent,
  toQueueMessage,
  toRegistration,
  toRow,
} from "./lib/generate.mjs";
import { progressBar } from "./lib/progress.mjs";
import { table } from "./lib/report.mjs";
import { apportion, percentile, rng, summarize, zipfWeights } from "./lib/stats.mjs";
import { queryCases } from "./phases/query.mjs";
import { pickValues } from "./phases/seed.mjs";
import { simulate } from "./shard-sim.mjs";

const ROOT = path.join(import.meta.dirname, "..");
const EVENT_TYPES = [
  "email.sent",
  "email.delivered",
  "email.delayed",
  "email.bounced",
  "email.complained",
  "email.suppressed",
  "email.unsubscribed",
  "email.opened",
  "email.clicked",
  "email.failed",
];

const tests = [];
const check = (name, fn) => tests.push({ name, fn });

check("percentiles and summaries", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i);
  const sorted = [...values].sort((a, b) => a - b);
  assert.equal(percentile(sorted, 50), 50);
  assert.equal(percentile(sorted, 99), 99);
  assert.equal(percentile(sorted, 100), 100);
  assert.equal(percentile([], 50), null);
  const s = summarize(values);
  assert.deepEqual([s.n, s.min, s.p50, s.p99, s.max, s.mean], [100, 1, 50, 99, 100, 50.5]);
});

check("seeded randomness, Zipf weights, apportioning", () => {
  const a = rng(7);
  const b = rng(7);
  assert.deepEqual([a.next(), a.hex(12), a.int(1, 6)], [b.next(), b.hex(12), b.int(1, 6)]);
  const w = zipfWeights(100, 1.1);
  assert.ok(Math.abs(w.reduce((x, y) => x + y, 0) - 1) < 1e-9);
  assert.ok(w[0] > w[1] && w[1] > w[99]);
  const parts = apportion(1001, w);
  assert.equal(
    parts.reduce((x, y) => x + y, 0),
    1001,
  );
});

check("generator: budgets, determinism, shapes the schema accepts", () => {
  const u = buildUniverse({ accounts: 5, totalEvents: 3000, now: Date.UTC(2026, 10, 1), seed: 11 });
  assert.equal(
    u.accounts.reduce((s, a) => s + a.events, 0),
    3000,
  );
  assert.ok(u.accounts[0].events > u.accounts[4].events, "sizes are skewed");
  let total = 0;
  const ids = new Set();
  for (const account of u.accounts) {
    let n = 0;
    for (const { message, events } of accountMessages(u, account)) {
      assert.match(message.email_id, /^email_[0-9a-f-]{36}$/);
      for (const e of events) {
        n += 1;
        assert.match(e.id, /^evt_[0-9a-z]{8,64}$/);
        assert.ok(!ids.has(e.id), "event ids are unique");
        ids.add(e.id);
        assert.ok(EVENT_TYPES.includes(e.type), e.type);
        assert.ok(e.occurred_at >= u.window.start && e.occurred_at < u.window.end, "inside the window");
        assert.equal(e.recipient, e.recipient.toLowerCase());
        assert.ok(e.tags.length <= 10 && e.tags.every((t) => /^[A-Za-z0-9_-]{1,64}$/.test(t)));
        assert.ok(e.topic === null || /^[a-z0-9_.-]{1,64}$/.test(e.topic));
        assert.equal(toRow(e).length, EVENT_COLUMNS.length);
      }
    }
    assert.equal(n, account.events, "each account gets exactly its budget");
    total += n;
  }
  assert.equal(total, 3000);
  const again = buildUniverse({ accounts: 5, totalEvents: 3000, now: Date.UTC(2026, 10, 1), seed: 11 });
  const first = (x) => accountMessages(x, x.accounts[0]).next().value.events[0].id;
  assert.equal(first(u), first(again), "same seed, same data");
});

check("generator columns match migrations/ and the bench loader", () => {
  const dir = path.join(ROOT, "migrations");
  const sql = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .map((f) => readFileSync(path.join(dir, f), "utf8"))
    .join("\n");
  const create = /CREATE TABLE `events` \(([\s\S]*?)\n\)/.exec(sql)?.[1];
  assert.ok(create, "migrations create the events table");
  const columns = [...create.matchAll(/^\s*`([a-z_]+)`/gm)].map((m) => m[1]);
  assert.deepEqual([...columns].sort(), [...EVENT_COLUMNS].sort(), "every events column is generated");
  const worker = readFileSync(path.join(ROOT, "bench", "bench-worker.ts"), "utf8");
  const loader = /INSERT INTO events \(([^)]*)\)/
    .exec(worker)?.[1]
    .split(",")
    .map((c) => c.trim());
  assert.deepEqual(loader, EVENT_COLUMNS, "the loader's column order is the generator's");
});

check("queue messages as the producers build them", () => {
  const u = buildUniverse({ accounts: 1, totalEvents: 50, seed: 5 });
  const { message } = accountMessages(u, u.accounts[0]).next().value;
  const reg = toRegistration(message);
  assert.equal(reg.type, "register");
  assert.deepEqual(Object.keys(reg.message).sort(), [
    "campaign",
    "email_id",
    "from",
    "from_domain",
    "message_id",
    "subject",
    "tags",
    "template_id",
    "topic",
  ]);
  const open = toQueueMessage(syntheticEvent(message, "open", 1));
  assert.equal(open.event.type, "email.opened");
  assert.equal(open.event.campaign, null, "tracking events leave dimensions to the registration");
  assert.ok(open.event.tracking && "bot" in open.event.tracking);
  const bounce = toQueueMessage(syntheticEvent(message, "bounce", 2));
  assert.deepEqual(bounce.suppress, { reason: "hard_bounce", topic: null });
  assert.equal(bounce.event.bounce_type, "permanent");
  const delivery = toQueueMessage(syntheticEvent(message, "delivery", 3));
  assert.equal(delivery.event.smtp_code, 250);
  assert.equal(Object.keys(delivery.event).length, 21, "every field of the event record");
});

check("JSON chunks stay under the byte bound and keep every row", () => {
  const rows = Array.from({ length: 1000 }, (_, i) => ["x".repeat(i % 50), i]);
  let count = 0;
  for (const c of jsonChunks(rows, { maxBytes: 4000, maxRows: 300 })) {
    assert.ok(c.json.length <= 4000);
    assert.ok(c.rows <= 300);
    assert.equal(JSON.parse(c.json).length, c.rows);
    count += c.rows;
  }
  assert.equal(count, 1000);
});

check("direct SQL baselines pick the best index and keyset", () => {
  const w = { start: 1, end: 2 };
  const byEmail = directPageSql(
    "a",
    w,
    { email_id: "e", event_type: "email.opened,email.clicked" },
    null,
    20,
  );
  assert.match(byEmail.page.sql, /INDEXED BY events_email_idx/);
  assert.deepEqual(byEmail.page.params, ["a", 1, 2, "e", "email.opened", "email.clicked", 21]);
  assert.deepEqual(byEmail.count.params, ["a", 1, 2, "e", "email.opened", "email.clicked"]);
  const byRecipient = directPageSql("a", w, { recipient: "X@Y.com" }, { occurred_at: 5, id: "evt_1" }, 10);
  assert.match(byRecipient.page.sql, /INDEXED BY events_recipient_idx/);
  assert.match(byRecipient.page.sql, /\(occurred_at, id\) < \(\?, \?\)/);
  // On a later page the cursor, not the window's end, bounds the range (see direct-sql.mjs).
  assert.doesNotMatch(byRecipient.page.sql, /occurred_at < \?/);
  assert.deepEqual(byRecipient.page.params, ["a", 1, 5, "evt_1", "x@y.com", 11]);
  assert.deepEqual(byRecipient.count.params, ["a", 1, 2, "x@y.com"]);
  const byTag = directPageSql("a", w, { tags: "vip,eu" }, null, 20);
  assert.doesNotMatch(byTag.page.sql, /INDEXED BY/);
  assert.match(byTag.page.sql, /json_each\(events\.tags\)/);
});

check("query cases cover every SPEC §9 filter alone", () => {
  const probe = {
    account: "acct_x",
    events: 10,
    types: new Map([["email.sent", 3]]),
    campaigns: new Map([
      ["c1", { count: 30, at: 1 }],
      ["c2", { count: 25, at: 2 }],
    ]),
    topics: new Map([["news", 4]]),
    templates: new Map([["t", 4]]),
    tags: new Map([
      ["vip", 2],
      ["eu", 1],
    ]),
    domains: new Map([["mail.x.com", 4]]),
    recipients: new Map([["r@x.com", 3]]),
    emails: new Map([["email_1", 3]]),
    middleMessage: { message_id: "<m@x>" },
  };
  const v = pickValues(probe);
  assert.equal(v.campaignOldest, "c1");
  assert.equal(v.campaignRecent, "c2");
  const cases = queryCases(v, { deepPages: 20 });
  const singles = cases.filter((c) => c.kind === "single").map((c) => Object.keys(c.params).join(","));
  for (const f of [
    "event_type",
    "recipient",
    "email_id",
    "message_id",
    "topic",
    "template_id",
    "campaign",
    "domain",
    "tags",
  ]) {
    assert.ok(singles.includes(f), `a single-filter case for ${f}`);
  }
  assert.ok(cases.some((c) => c.kind === "deep" && c.pages >= 20));
});

check("cost math at list prices", () => {
  const near = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);
  near(costPerMillion({ requests: 1 }).total, PRICES.workers.request_per_million);
  near(costPerMillion({ queue_messages: 1, queue_message_bytes: 900 }).total, 1.2);
  near(costPerMillion({ queue_messages: 1, queue_message_bytes: 70_000 }).total, 2.4);
  near(costPerMillion({ d1_rows_written: 3 }).total, 3);
  near(costPerMillion({ d1_rows_read: 51 }).total, 0.051); // 51M rows read per million queries
  near(costPerMillion({ cpu_ms: 0.5 }).total, 0.01);
  near(costPerMillion({ kv_writes: 1, kv_reads: 2 }).total, 6);
  // 700 bytes kept one month: 0.7 GB-month per million events.
  near(costPerMillion({ stored_bytes: 700, storage_months: 1 }).total, 0.525);
  assert.equal(eventsPerDay(700), 476_190);
});

check("shard routing spreads a skewed set of accounts", () => {
  const out = simulate({ count: 400, shards: 4, skew: 1.1 });
  const byName = Object.fromEntries(out.results.map((r) => [r.scheme, r]));
  const striped = byName["rendezvous + placement table + whale stripes"];
  assert.ok(striped.max_over_mean < 1.1, `striped max/mean ${striped.max_over_mean}`);
  assert.ok(byName["rendezvous hash"].max_over_mean > striped.max_over_mean);
  assert.ok(
    Math.abs(byName["rendezvous hash"].moved_accounts_on_adding_a_shard - 0.2) < 0.08,
    "about 1/(n+1) move",
  );
});

check("progress lines and tables render without a terminal", () => {
  let out = "";
  const stream = { isTTY: false, write: (s) => (out += s) };
  const bar = progressBar("phase", 8, { stream });
  for (let i = 0; i < 8; i++) bar.tick();
  bar.done();
  assert.match(out, /phase: 0%/);
  assert.match(out, /phase: 100% 8\/8/);
  const t = table(
    ["a", "b"],
    [
      ["x", 1.23456],
      ["yy", 1000],
    ],
  );
  assert.match(t, /x\s+1\.23/);
  assert.match(t, /1,000/);
});

check("machine-traffic measurement on a small trace (bench/classify.mjs)", async () => {
  const { runClassifyBench } = await import("./classify.mjs");
  const r = await runClassifyBench({ recipients: 1_500, quiet: true });
  // Only the documented known misses of the repo fixtures are classified against their label.
  assert.deepEqual(
    r.fixtures.wrong.map((w) => w.origin),
    ["machine-traffic.json (known misses)", "machine-traffic.json (known misses)"],
  );
  assert.equal(r.trace.personLostByBurst, 0);
  assert.ok(r.trace.multiLinkBursts > 100);
  // 0.90, not the 0.95 target: the two-link rule now needs one address prefix (issue 21, finding 7:
  // a click on a second link from the same carrier NAT must not delete a person's click), so two-link
  // scanner sweeps spread over several /24s of one ASN are no longer removed (92% on this trace).
  // BENCHMARKS.md records the miss; this guards against a further regression.
  assert.ok(r.trace.burstsRemoved / r.trace.multiLinkBursts >= 0.9);
});

export async function selfTest() {
  let failed = 0;
  const started = Date.now();
  for (const { name, fn } of tests) {
    try {
      await fn();
      process.stdout.write(`  ok  ${name}\n`);
    } catch (err) {
      failed += 1;
      process.stdout.write(`  FAIL ${name}\n${String(err.stack ?? err).replace(/^/gm, "       ")}\n`);
    }
  }
  process.stdout.write(
    `bench self-test: ${tests.length - failed}/${tests.length} passed in ${Date.now() - started} ms\n`,
  );
  return failed === 0;
}
