/**
 * The benchmark's Worker entry (never deployed). It serves the real Worker (src/index.ts) unchanged,
 * with two additions the benchmark needs to measure rather than guess:
 *
 * - Counting bindings. Every request the real app handles sees DB, SUPPRESSIONS and EVENTS_QUEUE
 *   through thin proxies that count calls, so "D1 and KV calls per tracking request" is observed.
 *   An uncalled proxy costs nothing; the wrapped env is built once per env object, so the app's
 *   per-isolate configuration cache keeps working.
 * - Routes under /__bench/ that run the real consumer (handleEventsBatch) and the real query
 *   (listEvents) against a D1 wrapper that records every statement's `meta` (rows read and
 *   written, size_after), run SQL directly for the hand-written baselines, and bulk-load rows.
 *
 * Every /__bench/ request must carry `x-bench-key: $BENCH_KEY` (a random value the runner sets).
 */
import { evaluateAccounts } from "../src/alerts/evaluate";
import { openSparkPostPage, sparkPostQueryFrom } from "../src/compat/sparkpost/query";
import type { Env } from "../src/env";
import { createErasure, runErasure } from "../src/erasures/run";
import { listEvents } from "../src/events/routes";
import worker from "../src/index";
import { parseQuery } from "../src/lib/validate";
import { getLinkMetrics, linksQuerySchema } from "../src/metrics/links";
import { metricsQuerySchema } from "../src/metrics/query";
import { getMetrics } from "../src/metrics/routes";
import type { QueueMessage } from "../src/pipeline/messages";
import { handleEventsBatch } from "../src/queue/consumer";
import { shardDb } from "../src/shards/bindings";
import { loadDirectory } from "../src/shards/directory";
import { accountShards, readDbs, routeAccount, shardOfEmail } from "../src/shards/route";
import { clearLinkRollups, clearRollups, rebuildLinkRollupsRange, rebuildRollupsRange } from "../src/store";
import { processImportChunk } from "../src/suppressions/imports";
import { handleWebhookBatch } from "../src/webhooks/deliver";

interface BenchEnv extends Env {
  BENCH_KEY?: string;
}

interface Counters {
  requests: number;
  d1Calls: number;
  kvCalls: number;
  queueCalls: number;
  queueMessages: number;
}

const counters: Counters = { requests: 0, d1Calls: 0, kvCalls: 0, queueCalls: 0, queueMessages: 0 };

/** What the webhook delivery consumer did, from D1's own statement meta (webhooks-delivery phase). */
const webhookConsumer = { batches: 0, messages: 0, statements: 0, rows_read: 0, rows_written: 0 };

/** Counts every method call on a binding object, forwarding it unchanged. */
function counting<T extends object>(target: T, onCall: (method: string, args: unknown[]) => void): T {
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        onCall(String(prop), args);
        return (value as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

/** Every D1 binding of the env (DB and each event shard EVENTS_i, SPEC §17), each passed through `wrap`. */
function d1Bindings(
  env: BenchEnv,
  wrap: (db: D1Database, binding: string) => D1Database,
): Record<string, D1Database> {
  const out: Record<string, D1Database> = {};
  for (const [name, value] of Object.entries(env)) {
    if ((name === "DB" || /^EVENTS_\d+$/.test(name)) && value) out[name] = wrap(value as D1Database, name);
  }
  return out;
}

const countedEnvs = new WeakMap<object, BenchEnv>();
function countedEnv(env: BenchEnv): BenchEnv {
  let wrapped = countedEnvs.get(env);
  if (!wrapped) {
    wrapped = {
      ...env,
      ...d1Bindings(env, (db) =>
        counting(db, () => {
          counters.d1Calls += 1;
        }),
      ),
      SUPPRESSIONS: counting(env.SUPPRESSIONS, () => {
        counters.kvCalls += 1;
      }),
      EVENTS_QUEUE: counting(env.EVENTS_QUEUE, (method, args) => {
        counters.queueCalls += 1;
        counters.queueMessages += method === "sendBatch" ? (args[0] as unknown[]).length : 1;
      }),
    };
    countedEnvs.set(env, wrapped);
  }
  return wrapped;
}

/** One executed statement as D1 reported it (null where the call shape returns no meta). */
interface StatementMeta {
  /** The D1 binding it ran on: DB (the control database) or EVENTS_i (an event shard). */
  on: string;
  sql: string;
  inserts: string | null;
  rows_read: number | null;
  rows_written: number | null;
  size_after: number | null;
  duration: number | null;
}

interface KvLog {
  reads: number;
  writes: number;
  deletes: number;
  lists: number;
}

/**
 * An env whose DB records the meta of every statement it runs (batch, all, run; first and raw give
 * no meta and are recorded with nulls) and whose KV counts operations by billing class.
 */
function capturingEnv(env: BenchEnv, log: StatementMeta[], kv: KvLog, measureAll = false): BenchEnv {
  const real = new WeakMap<object, D1PreparedStatement>();
  const sqlOf = new WeakMap<object, string>();
  const bindingOf = new WeakMap<object, string>();
  const record = (on: string, sql: string, meta: Partial<D1Meta> | null) =>
    log.push({
      on,
      sql: sql.replace(/\s+/g, " ").trim().slice(0, 80),
      // The table an INSERT writes (a rollup statement's INSERT follows its long WITH clause).
      inserts: /INSERT INTO (\w+)/.exec(sql)?.[1] ?? null,
      rows_read: meta?.rows_read ?? null,
      rows_written: meta?.rows_written ?? null,
      size_after: meta?.size_after ?? null,
      duration: meta?.duration ?? null,
    });
  const wrapStatement = (stmt: D1PreparedStatement, sql: string, on: string): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(t, prop) {
        if (prop === "bind") return (...args: unknown[]) => wrapStatement(t.bind(...args), sql, on);
        if (prop === "all" || prop === "run")
          return async () => {
            const result = await t[prop]();
            record(on, sql, result.meta);
            return result;
          };
        // Measuring a request's rows read (/__bench/measure): first() and raw() give no meta, so they
        // run as all() and are shaped as the caller expects (raw: values in column order).
        if (measureAll && prop === "first")
          return async (column?: string) => {
            const result = await t.all<Record<string, unknown>>();
            record(on, sql, result.meta);
            const row = result.results[0] ?? null;
            return column === undefined ? row : row === null ? null : (row[column] ?? null);
          };
        if (measureAll && prop === "raw")
          return async (options?: { columnNames?: boolean }) => {
            const result = await t.all<Record<string, unknown>>();
            record(on, sql, result.meta);
            const rows = result.results.map((r) => Object.values(r));
            const names = Object.keys(result.results[0] ?? {});
            return options?.columnNames ? [names, ...rows] : rows;
          };
        if (prop === "first" || prop === "raw")
          return async (...args: unknown[]) => {
            const result = await (t[prop] as (...a: unknown[]) => Promise<unknown>)(...args);
            record(on, sql, null);
            return result;
          };
        const value = Reflect.get(t, prop, t) as unknown;
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
    real.set(proxy, stmt);
    sqlOf.set(proxy, sql);
    bindingOf.set(proxy, on);
    return proxy;
  };
  const capture = (database: D1Database, binding: string) =>
    new Proxy(database, {
      get(t, prop) {
        if (prop === "prepare") return (sql: string) => wrapStatement(t.prepare(sql), sql, binding);
        if (prop === "batch")
          return async (statements: D1PreparedStatement[]) => {
            const results = await t.batch(statements.map((s) => real.get(s) ?? s));
            results.forEach((r, i) => {
              const s = statements[i] as object;
              record(bindingOf.get(s) ?? binding, sqlOf.get(s) ?? "?", r.meta);
            });
            return results;
          };
        const value = Reflect.get(t, prop, t) as unknown;
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  const kvClass: Record<string, keyof KvLog> = {
    get: "reads",
    getWithMetadata: "reads",
    put: "writes",
    delete: "deletes",
    list: "lists",
  };
  const suppressions = counting(env.SUPPRESSIONS, (method, args) => {
    const cls = kvClass[method];
    if (!cls) return;
    // A multi-key get is billed per key.
    kv[cls] += cls === "reads" && Array.isArray(args[0]) ? args[0].length : 1;
  });
  return { ...env, ...d1Bindings(env, capture), SUPPRESSIONS: suppressions };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** Bulk loads: rows travel as one JSON array bound to a single parameter, like the consumer's. */
const LOADERS: Record<string, string> = {
  events: `INSERT INTO events (account_id, occurred_at, id, type, email_id, message_id, from_address, from_domain,
      recipient, subject, topic, campaign, template_id, tags, smtp_code, smtp_response, bounce_type,
      bounce_classification, complaint_type, attempt, tracking)
    SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8,
      value->>9, value->>10, value->>11, value->>12, value->>13, value->>14, value->>15, value->>16,
      value->>17, value->>18, value->>19, value->>20
    FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING`,
  // The Message-ID map the consumer writes beside events (src/events/message-id-map.ts), from the
  // same event rows: one row per (account, message_id, email_id).
  message_ids: `INSERT INTO message_ids (account_id, message_id, email_id, first_seen_at)
    SELECT value->>0, value->>5, value->>4, MIN(value->>1) FROM json_each(?1) WHERE value->>5 IS NOT NULL
    GROUP BY 1, 2, 3 ON CONFLICT DO NOTHING`,
  sending_domains: `INSERT INTO sending_domains (account_id, domain, first_seen_at)
    SELECT value->>0, value->>1, value->>2 FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING`,
  accounts: `INSERT INTO accounts (id, plan, created_at, updated_at)
    SELECT value->>0, value->>1, value->>2, value->>2 FROM json_each(?1) WHERE true
    ON CONFLICT (id) DO UPDATE SET plan = excluded.plan`,
};

/** The real app with EVENTS_QUEUE.send resolving at once: what the local Queues simulator adds. */
const stubbedQueueEnvs = new WeakMap<object, BenchEnv>();
function stubbedQueueEnv(env: BenchEnv): BenchEnv {
  let wrapped = stubbedQueueEnvs.get(env);
  if (!wrapped) {
    const queue = {
      send: async () => {},
      sendBatch: async () => {},
    } as unknown as Queue<never>;
    wrapped = { ...countedEnv(env), EVENTS_QUEUE: queue };
    stubbedQueueEnvs.set(env, wrapped);
  }
  return wrapped;
}

const PIXEL = new Uint8Array([
  0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00,
  0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
  0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
]);

/**
 * Diagnostic variants of the hot path, to attribute the real route's cost:
 * - constant: the bare Worker's answer from inside this bundle and isolate (the wrapper's floor);
 * - noqueue/<path>: the real route with the queue send stubbed out.
 */
function variant(
  request: Request,
  env: BenchEnv,
  ctx: ExecutionContext,
  url: URL,
): Response | Promise<Response> {
  const rest = url.pathname.slice("/__bench/variant/".length);
  if (rest.startsWith("constant/")) {
    return rest.startsWith("constant/c/")
      ? Response.redirect("https://example.com/welcome?utm_source=mailtrail", 302)
      : new Response(PIXEL, {
          headers: {
            "Content-Type": "image/gif",
            "Cache-Control": "no-store, no-cache, must-revalidate, private",
          },
        });
  }
  if (rest.startsWith("noqueue/")) {
    const target = new URL(url);
    target.pathname = rest.slice("noqueue".length);
    counters.requests += 1;
    return worker.fetch(new Request(target, request), stubbedQueueEnv(env), ctx);
  }
  return json({ error: "unknown variant" }, 404);
}

async function benchRoute(
  request: Request,
  env: BenchEnv,
  url: URL,
  ctx: ExecutionContext,
): Promise<Response> {
  const route = url.pathname.slice("/__bench/".length);
  if (route === "counters") return json(counters);
  if (route === "webhook-consumer") return json(webhookConsumer);
  if (route === "enqueue") {
    // Queue messages straight onto EVENTS_QUEUE (the webhooks phase's burst skips the HTTP edge).
    const bodies = (await request.json()) as QueueMessage[];
    for (let i = 0; i < bodies.length; i += 100) {
      await env.EVENTS_QUEUE.sendBatch(
        bodies.slice(i, i + 100).map((body) => ({ body, contentType: "json" })),
      );
    }
    return json({ sent: bodies.length });
  }

  if (route === "measure") {
    // One real request through the app (the adversarial phase), with every D1 statement's meta
    // recorded and the response body read to its end inside the Worker.
    const spec = (await request.json()) as {
      method?: string;
      path: string;
      headers?: Record<string, string>;
      body?: string;
    };
    const log: StatementMeta[] = [];
    const kv: KvLog = { reads: 0, writes: 0, deletes: 0, lists: 0 };
    const started = performance.now();
    const res = await worker.fetch(
      new Request(new URL(spec.path, url.origin), {
        method: spec.method ?? "GET",
        headers: spec.headers,
        body: spec.body,
      }),
      capturingEnv(env, log, kv, true),
      ctx,
    );
    // Read to the end in constant memory; the first bytes kept for an error's message.
    let bytes = 0;
    let first = new Uint8Array(0);
    const reader = res.body?.getReader();
    const json_ = (res.headers.get("content-type") ?? "").includes("application/json");
    const kept: Uint8Array[] = [];
    for (;;) {
      if (!reader) break;
      const { done, value } = await reader.read();
      if (done) break;
      if (first.length < 300) first = new Uint8Array([...first, ...value.slice(0, 300 - first.length)]);
      if (json_ && bytes < 50_000_000) kept.push(value);
      bytes += value.byteLength;
    }
    // The next page's path, for paged JSON answers (native next_cursor, SparkPost links.next).
    let nextPath: string | null = null;
    if (json_ && res.status === 200 && bytes < 50_000_000) {
      try {
        const body = JSON.parse(new TextDecoder().decode(await new Blob(kept).arrayBuffer())) as {
          next_cursor?: string | null;
          links?: { next?: string };
        };
        if (typeof body.next_cursor === "string") {
          const next = new URL(spec.path, url.origin);
          next.searchParams.set("after", body.next_cursor);
          nextPath = `${next.pathname}${next.search}`;
        } else if (typeof body.links?.next === "string") {
          nextPath = body.links.next.startsWith("/compat/")
            ? body.links.next
            : `/compat/sparkpost${body.links.next}`;
        }
      } catch {}
    }
    const ms = performance.now() - started;
    const reads = log.map((s) => s.rows_read ?? 0);
    const head = res.status >= 400 ? new TextDecoder().decode(first) : null;
    // SPEC §18's budget holds per database a request touches: rows read summed per D1 binding.
    const perBinding: Record<string, number> = {};
    for (const s of log) perBinding[s.on] = (perBinding[s.on] ?? 0) + (s.rows_read ?? 0);
    return json({
      status: res.status,
      ms,
      bytes,
      statements: log.length,
      rows_read: reads.reduce((a, b) => a + b, 0),
      rows_read_by_binding: perBinding,
      max_binding_rows_read: Math.max(0, ...Object.values(perBinding)),
      max_statement_rows_read: Math.max(0, ...reads),
      unmeasured_statements: log.filter((s) => s.rows_read === null).length,
      retry_after: res.headers.get("retry-after"),
      next_path: nextPath,
      error_head: head,
      top: [...log].sort((a, b) => (b.rows_read ?? 0) - (a.rows_read ?? 0)).slice(0, 3),
    });
  }

  if (route === "sql") {
    // Runs statements as given: migrations, the hand-written query baselines, size probes. `on` says
    // where (SPEC §17): a D1 binding (default DB); "all", every D1 binding (migrations, answering the
    // last); "events", every event shard (rows concatenated, rows_read and size_after summed);
    // "account:<id>", the shard holding that account's events.
    const body = (await request.json()) as { statements: { sql: string; params?: unknown[]; on?: string }[] };
    const out = [];
    const bindings = d1Bindings(env, (db) => db);
    const shardsOnly = Object.entries(bindings)
      .filter(([name]) => name !== "DB")
      .map(([, db]) => db);
    for (const s of body.statements) {
      let targets: (D1Database | undefined)[];
      if (s.on === "all") targets = Object.values(bindings);
      else if (s.on === "events") targets = shardsOnly.length > 0 ? shardsOnly : [env.DB];
      else if (s.on?.startsWith("account:")) {
        const account = await accountShards(env, s.on.slice("account:".length));
        targets = [shardDb(env, account.shards[0] ?? account.home)];
      } else targets = [bindings[s.on ?? "DB"]];
      let merged: { results: unknown[]; meta: D1Meta; ms: number } | null = null;
      const started = performance.now();
      for (const db of targets) {
        if (!db) return json({ error: `no D1 binding ${s.on}` }, 400);
        const result = await db
          .prepare(s.sql)
          .bind(...(s.params ?? []))
          .all();
        if (s.on === "all" || !merged) merged = { results: result.results, meta: { ...result.meta }, ms: 0 };
        else {
          merged.results.push(...result.results);
          merged.meta.rows_read += result.meta.rows_read;
          merged.meta.size_after += result.meta.size_after;
        }
      }
      if (merged) merged.ms = performance.now() - started;
      out.push(merged);
    }
    return json(out);
  }

  if (route === "load") {
    const table = url.searchParams.get("table") ?? "";
    const sql = LOADERS[table];
    if (!sql) return json({ error: "unknown table" }, 400);
    const rows = (await request.json()) as unknown[][];
    if (table === "accounts")
      return json({ meta: (await env.DB.prepare(sql).bind(JSON.stringify(rows)).run()).meta });
    // Each row to the shard the Worker routes it to (SPEC §17): its email's stripe (events and the
    // Message-ID map: account at [0], email_id at [4]), or the account's home (sending domains).
    const directory = await loadDirectory(env);
    const groups = new Map<number, unknown[][]>();
    for (const row of rows) {
      const account = routeAccount(env, String(row[0]), directory);
      const shard = table === "sending_domains" ? account.home : shardOfEmail(account, String(row[4]));
      groups.set(shard, [...(groups.get(shard) ?? []), row]);
    }
    const metas = await Promise.all(
      [...groups].map(
        async ([shard, list]) =>
          (await shardDb(env, shard).prepare(sql).bind(JSON.stringify(list)).run()).meta,
      ),
    );
    return json({
      meta: {
        rows_written: metas.reduce((n, m) => n + m.rows_written, 0),
        rows_read: metas.reduce((n, m) => n + m.rows_read, 0),
        size_after: Math.max(0, ...metas.map((m) => m.size_after)),
        changes: metas.reduce((n, m) => n + m.changes, 0),
      },
    });
  }

  if (route === "consume") {
    // The real consumer on a posted batch, as the Queues runtime would deliver it.
    const bodies = (await request.json()) as unknown[];
    const statements: StatementMeta[] = [];
    const kv: KvLog = { reads: 0, writes: 0, deletes: 0, lists: 0 };
    let acked = 0;
    let retried = 0;
    const now = new Date();
    const batch = {
      queue: "mailtrail-events",
      messages: bodies.map((body, i) => ({
        id: `bench-${i}`,
        timestamp: now,
        attempts: 1,
        body,
        ack: () => {
          acked += 1;
        },
        retry: () => {
          retried += 1;
        },
      })),
      ackAll() {},
      retryAll() {},
    } as unknown as MessageBatch<unknown>;
    const started = Date.now();
    await handleEventsBatch(batch, capturingEnv(env, statements, kv));
    return json({ acked, retried, ms: Date.now() - started, statements, kv });
  }

  if (route === "events") {
    // The real GET /v1/events work for an account (the HTTP route adds JWT verification only).
    const account = request.headers.get("x-bench-account") ?? "";
    const statements: StatementMeta[] = [];
    const kv: KvLog = { reads: 0, writes: 0, deletes: 0, lists: 0 };
    // x-bench-measure-all: first() and raw() run as all() so that every statement's rows are counted
    // (the shards phase reports rows read per binding, the control database's included).
    const measureAll = request.headers.get("x-bench-measure-all") === "1";
    const page = await listEvents(capturingEnv(env, statements, kv, measureAll), account, url.searchParams);
    return json({
      count: page.data.length,
      has_more: page.has_more,
      next_cursor: page.next_cursor,
      window: page.window,
      total: page.total,
      rowsRead: page.rowsRead,
      countRowsRead: page.countRowsRead ?? null,
      statements,
    });
  }
  if (route === "rebuild-rollups") {
    // Rolls up the bulk-loaded events of one account (metrics phase), as the one-time back-fill would,
    // in short requests driven by bench/lib/rollups.mjs: `step=clear` clears the account's rollups on
    // each of its shards and answers the UTC days its events span; then `day=<ms>` rebuilds one day.
    // One request for a whale's whole window (233,753 events, ~17 s) blocked the local runtime's event
    // loop so long that its keep-alive timers fired late, and it closed the client's connection.
    const account = url.searchParams.get("account") ?? "";
    const started = performance.now();
    const shards = readDbs(env, await accountShards(env, account));
    const DAY = 86_400_000;
    if (url.searchParams.get("step") === "clear") {
      const days = new Set<number>();
      const meta = [];
      for (const { db } of shards) {
        const span = await db
          .prepare("SELECT MIN(occurred_at) AS lo, MAX(occurred_at) AS hi FROM events WHERE account_id = ?")
          .bind(account)
          .first<{ lo: number | null; hi: number | null }>();
        const out = await db.batch([...clearRollups(db, account), clearLinkRollups(db, account)]);
        meta.push(...out.map((r) => r.meta));
        if (span?.lo == null || span.hi == null) continue;
        for (let day = span.lo - (span.lo % DAY); day <= span.hi; day += DAY) days.add(day);
      }
      return json({ ms: performance.now() - started, days: [...days].sort((a, b) => a - b), meta });
    }
    const day = Number(url.searchParams.get("day"));
    if (!Number.isSafeInteger(day) || day % DAY !== 0)
      return json({ error: "day must be a UTC midnight in ms" }, 400);
    const results = (
      await Promise.all(
        shards.map(({ db }) =>
          db.batch([
            ...rebuildRollupsRange(db, account, day, day + DAY),
            rebuildLinkRollupsRange(db, account, day, day + DAY),
          ]),
        ),
      )
    ).flat();
    return json({ ms: performance.now() - started, meta: results.map((r) => r.meta) });
  }

  if (route === "links") {
    // The real GET /v1/metrics/links work for an account.
    const account = request.headers.get("x-bench-account") ?? "";
    const links = await getLinkMetrics(env, account, parseQuery(linksQuerySchema, url.searchParams));
    return json({ links: links.data.length, clicked: links.totals.clicked, rowsRead: links.rowsRead });
  }

  if (route === "evaluate-alerts") {
    // One alert evaluation of one account (its default rules), as the cron runs it: rows read and time.
    // `account` may list several (comma-separated): one page, as the cron evaluates 100 at a time.
    const accounts = (url.searchParams.get("account") ?? "").split(",");
    const started = performance.now();
    const result = await evaluateAccounts(env, accounts, Date.now());
    return json({ ms: performance.now() - started, ...result });
  }

  if (route === "metrics") {
    // The real GET /v1/metrics work for an account (the HTTP route adds JWT verification only).
    const account = request.headers.get("x-bench-account") ?? "";
    const statements: StatementMeta[] = [];
    const kv: KvLog = { reads: 0, writes: 0, deletes: 0, lists: 0 };
    let metrics: Awaited<ReturnType<typeof getMetrics>>;
    try {
      metrics = await getMetrics(
        capturingEnv(env, statements, kv),
        account,
        parseQuery(metricsQuerySchema, url.searchParams),
      );
    } catch (e) {
      // A refusal (SPEC §18: more rollup rows than the budget) is a result to record, not a crash.
      const err = e as { status?: number; message?: string };
      const rowsRead = statements.reduce((s, x) => s + (x.rows_read ?? 0), 0);
      return json({
        refused: { status: err.status ?? 500, message: err.message ?? String(e) },
        rowsRead,
        statements,
      });
    }
    return json({
      buckets: metrics.data.length,
      rowsRead: metrics.rowsRead,
      totals: metrics.totals,
      statements,
    });
  }
  if (route === "sparkpost") {
    // The real SparkPost search page for an account, drained: D1's rows read by the scan and the count.
    const account = request.headers.get("x-bench-account") ?? "";
    const page = await openSparkPostPage(env, account, sparkPostQueryFrom(url.searchParams));
    let returned = 0;
    for (;;) {
      const step = await page.chunks.next();
      if (step.done) {
        return json({
          returned,
          total_count: page.totalCount,
          scan_rows_read: step.value.rowsRead,
          count_rows_read: page.countRowsRead,
          next: page.linkFor(step.value.next),
        });
      }
      returned += step.value.length;
    }
  }
  if (route === "suppressions-job") {
    // A suppression import's chunks, or an erasure, run to the end in this request, with every D1
    // statement's meta and every KV operation counted (the suppressions phase).
    const body = (await request.json()) as
      | { kind: "import-chunk"; id: string }
      | { kind: "erasure"; account: string; email: string };
    const statements: StatementMeta[] = [];
    const kv: KvLog = { reads: 0, writes: 0, deletes: 0, lists: 0 };
    const captured = capturingEnv(env, statements, kv);
    const started = performance.now();
    let result: unknown = null;
    // One chunk per request, as one JOBS_QUEUE message would run it.
    if (body.kind === "import-chunk") result = await processImportChunk(captured, body.id);
    else {
      const row = await createErasure(captured, body.account, body.email, Date.now());
      result = await runErasure(captured, row.id);
    }
    const ms = performance.now() - started;
    return json({
      ms,
      result,
      statements: statements.length,
      rows_read: statements.reduce((n, s) => n + (s.rows_read ?? 0), 0),
      rows_written: statements.reduce((n, s) => n + (s.rows_written ?? 0), 0),
      kv,
    });
  }
  return json({ error: "unknown bench route" }, 404);
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/__bench/")) {
      if (!env.BENCH_KEY || request.headers.get("x-bench-key") !== env.BENCH_KEY)
        return json({ error: "forbidden" }, 403);
      if (url.pathname.startsWith("/__bench/variant/")) return variant(request, env, ctx, url);
      return benchRoute(request, env, url, ctx);
    }
    counters.requests += 1;
    return worker.fetch(request, countedEnv(env), ctx);
  },
  // The real consumers; the webhook deliveries' D1 statements are recorded to count rows per delivery.
  async queue(batch, env, ctx) {
    if (!batch.queue.endsWith("-webhooks")) return worker.queue(batch, env, ctx);
    const statements: StatementMeta[] = [];
    const kv: KvLog = { reads: 0, writes: 0, deletes: 0, lists: 0 };
    await handleWebhookBatch(batch, capturingEnv(env, statements, kv));
    webhookConsumer.batches += 1;
    webhookConsumer.messages += batch.messages.length;
    for (const s of statements) {
      webhookConsumer.statements += 1;
      webhookConsumer.rows_read += s.rows_read ?? 0;
      webhookConsumer.rows_written += s.rows_written ?? 0;
    }
  },
} satisfies ExportedHandler<BenchEnv>;
