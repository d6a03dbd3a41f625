// Phase 1, the hot path: GET /o/{token} and GET /c/{token} of the real Worker against a bare
// Worker answering the same bytes, under the same load generator, alternating round by round.
//
// Measured per route and target: requests/s at saturation, latency p50/p99 of every response
// (autocannon's per-response times, not its 1-ms histogram), workerd CPU per request from /proc,
// and on the real Worker the binding calls per request (D1, KV, queue) counted by bench-worker.ts.
import { randomUUID } from "node:crypto";
import autocannon from "autocannon";
import { mintToken } from "../../scripts/lib.mjs";
import { timedFetch } from "../lib/client.mjs";
import { timedBar } from "../lib/progress.mjs";
import { round, summarize } from "../lib/stats.mjs";

/** A person on desktop Outlook opening the email; a person in Chrome following the link. */
const OPEN_HEADERS = {
  "user-agent": "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
  accept: "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5",
  "accept-language": "en-US,en;q=0.9",
};
const CLICK_HEADERS = {
  "user-agent":
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
  accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  "accept-language": "en-US,en;q=0.9",
};
const HOT_ACCOUNT = "acct_bench_hot";

/** Gets a pixel and a click URL the way a platform would: from POST /v1/messages/instrument. */
async function trackedSample(app, secret) {
  const token = await mintToken({ sub: HOT_ACCOUNT, scope: "send", ttl: "1h", secret });
  const res = await timedFetch(`${app.url}/v1/messages/instrument`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      email_id: `email_${randomUUID()}`,
      recipient: "reader@example.com",
      from: "news@mail.example.com",
      subject: "Benchmark",
      campaign: "bench",
      html: '<html><body><p>Hello!</p><a href="https://example.com/welcome?utm_source=mailtrail" data-mt-name="cta">Read more</a></body></html>',
    }),
  });
  if (res.status === 404 || res.status === 405) {
    return {
      error: `POST /v1/messages/instrument answered ${res.status}: the tracking routes are not in this tree yet`,
    };
  }
  if (res.status !== 200 || !res.body?.pixel_url) {
    return { error: `POST /v1/messages/instrument answered ${res.status}: ${res.text.slice(0, 200)}` };
  }
  const click = /href="([^"]*\/c\/[^"]+)"/.exec(res.body.html ?? "")?.[1]?.replaceAll("&amp;", "&");
  const path = (u) => {
    const url = new URL(u, app.url);
    return `${url.pathname}${url.search}`;
  };
  return { open: path(res.body.pixel_url), click: click ? path(click) : null };
}

/** Checks that a route answers as SPEC §5 says before loading it; returns a reason when it does not. */
async function probe(url, kind, headers) {
  const res = await timedFetch(url, { headers, redirect: "manual" });
  if (kind === "open") {
    if (res.status !== 200 || !res.headers.get("content-type")?.startsWith("image/gif"))
      return `GET /o/{token} answered ${res.status} ${res.headers.get("content-type") ?? ""}`;
  } else if (res.status !== 302) {
    return `GET /c/{token} answered ${res.status}`;
  }
  return null;
}

/** One autocannon run; latencies are collected per response at full resolution. */
async function loadRun({ url, headers, seconds, connections, label }) {
  const latencies = [];
  const statuses = {};
  const stopBar = label ? timedBar(label, seconds) : () => {};
  const instance = autocannon({ url, headers, connections, duration: seconds, pipelining: 1 });
  instance.on("response", (_client, status, _bytes, ms) => {
    latencies.push(ms);
    statuses[status] = (statuses[status] ?? 0) + 1;
  });
  const result = await instance;
  stopBar();
  return {
    requests: latencies.length,
    seconds: result.duration,
    errors: result.errors + result.timeouts,
    statuses,
    latencies,
  };
}

/**
 * Runs one route: a warm-up on every target, then `rounds` measured rounds that visit the targets
 * in turn (bare, then the diagnostics, then the real route), so drift on the machine hits all alike.
 * Binding calls are counted around the real route's runs only.
 */
async function compareRoute({ kind, targets, headers, counters, options }) {
  const { seconds, rounds, connections, warmup } = options;
  for (const t of targets) await loadRun({ url: t.url, headers, seconds: warmup, connections });
  const acc = Object.fromEntries(
    targets.map((t) => [
      t.key,
      { requests: 0, seconds: 0, errors: 0, cpu: 0, latencies: [], unloaded: [], statuses: {} },
    ]),
  );
  const bindings = { requests: 0, d1Calls: 0, kvCalls: 0, queueCalls: 0, queueMessages: 0 };
  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      const before = t.key === "app" ? await counters() : null;
      const cpu0 = t.instance.cpuSeconds();
      const run = await loadRun({
        url: t.url,
        headers,
        seconds,
        connections,
        label: `  ${kind.padEnd(5)} ${t.label.padEnd(22)} round ${round}/${rounds}`,
      });
      const cpu1 = t.instance.cpuSeconds();
      if (before) {
        const after = await counters();
        for (const k of Object.keys(bindings)) bindings[k] += after[k] - before[k];
      }
      const a = acc[t.key];
      a.requests += run.requests;
      a.seconds += run.seconds;
      a.errors += run.errors;
      a.cpu += cpu0 === null || cpu1 === null ? Number.NaN : cpu1 - cpu0;
      for (const v of run.latencies) a.latencies.push(v);
      for (const [s, n] of Object.entries(run.statuses)) a.statuses[s] = (a.statuses[s] ?? 0) + n;
      if (t.key === "app" || t.key === "bare") {
        // Service latency without queueing: one connection, one request at a time.
        const single = await loadRun({
          url: t.url,
          headers,
          seconds: options.unloadedSeconds,
          connections: 1,
          label: `  ${kind.padEnd(5)} ${`${t.label}, 1 conn`.padEnd(22)} round ${round}/${rounds}`,
        });
        for (const v of single.latencies) a.unloaded.push(v);
      }
    }
  }
  const figures = (a) => {
    const lat = summarize(a.latencies);
    const unloaded = summarize(a.unloaded);
    return {
      rps: round(a.requests / a.seconds),
      p50_ms: round(lat.p50),
      p99_ms: round(lat.p99),
      ...(unloaded.n > 0
        ? { unloaded_p50_ms: round(unloaded.p50), unloaded_p99_ms: round(unloaded.p99) }
        : {}),
      cpu_ms_per_request: Number.isFinite(a.cpu) ? round((a.cpu * 1000) / a.requests) : null,
      cpu_utilisation: Number.isFinite(a.cpu) ? round(a.cpu / a.seconds) : null,
      requests: a.requests,
      errors: a.errors,
      statuses: a.statuses,
    };
  };
  const per = (key) => (bindings.requests > 0 ? round(bindings[key] / bindings.requests) : null);
  const all = Object.fromEntries(targets.map((t) => [t.key, figures(acc[t.key])]));
  const { app, bare, ...diagnostics } = all;
  return {
    route: kind === "open" ? "GET /o/{token}" : "GET /c/{token}",
    available: true,
    app,
    bare,
    ratio_rps: round(app.rps / bare.rps),
    ratio_p50: round(app.p50_ms / bare.p50_ms),
    ratio_unloaded_p50: round(app.unloaded_p50_ms / bare.unloaded_p50_ms),
    bindings_per_request: {
      requests_counted: bindings.requests,
      d1_calls: per("d1Calls"),
      kv_calls: per("kvCalls"),
      queue_calls: per("queueCalls"),
      queue_messages: per("queueMessages"),
    },
    diagnostics: Object.fromEntries(
      Object.entries(diagnostics).map(([key, f]) => [key, { ...f, ratio_rps: round(f.rps / bare.rps) }]),
    ),
  };
}

export async function hotPhase({ app, bare, client, secrets, options }) {
  const sample = await trackedSample(app, secrets.JWT_SECRET);
  if (sample.error) {
    return { available: false, reason: sample.error, routes: [] };
  }
  const routes = [];
  for (const [kind, path, headers] of [
    ["open", sample.open, OPEN_HEADERS],
    ["click", sample.click, CLICK_HEADERS],
  ]) {
    const name = kind === "open" ? "GET /o/{token}" : "GET /c/{token}";
    if (!path) {
      routes.push({ route: name, available: false, reason: "the instrumented HTML had no click link" });
      continue;
    }
    const problem = await probe(`${app.url}${path}`, kind, headers);
    if (problem) {
      routes.push({ route: name, available: false, reason: problem });
      continue;
    }
    const short = kind === "open" ? "o" : "c";
    const targets = [
      { key: "bare", label: "bare Worker", url: `${bare.url}/${short}/bare`, instance: bare },
      {
        key: "constant_in_bundle",
        label: "constant, same isolate",
        url: `${app.url}/__bench/variant/constant/${short}/x`,
        instance: app,
      },
      {
        key: "queue_send_stubbed",
        label: "route, no queue send",
        url: `${app.url}/__bench/variant/noqueue${path}`,
        instance: app,
      },
      { key: "app", label: "mailtrail route", url: `${app.url}${path}`, instance: app },
    ];
    // Every target gets the same headers; only the bench variants read the key.
    routes.push(
      await compareRoute({
        kind,
        targets,
        headers: { ...headers, "x-bench-key": secrets.BENCH_KEY },
        counters: client.counters,
        options,
      }),
    );
  }
  return { available: routes.some((r) => r.available), routes };
}
