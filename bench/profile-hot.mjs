#!/usr/bin/env node
// Where the hot path's CPU goes: a V8 CPU profile of the Worker's isolate while GET /o/{token} (or
// /c/{token}) is under load, summarised as self time per function. A diagnostic next to
// `npm run bench`, for whoever works on the tracking routes.
//
//   node bench/profile-hot.mjs [--route open|click] [--seconds 5]
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { mintToken } from "../scripts/lib.mjs";
import { benchSecrets, buildBundle, startWorker, workerConfig } from "./lib/instances.mjs";

const { values } = parseArgs({
  options: { route: { type: "string", default: "open" }, seconds: { type: "string", default: "5" } },
});
// ws is Miniflare's own dependency (Node 20 has no WebSocket client without a flag).
const WebSocket = createRequire(createRequire(import.meta.url).resolve("miniflare"))("ws");

const tmp = mkdtempSync(path.join(os.tmpdir(), "mailtrail-profile-"));
const bundle = await buildBundle(null, path.join(tmp, "build"));
const config = workerConfig();
const secrets = benchSecrets();
const inspectorPort = 9400 + Math.floor(Math.random() * 500);
const app = await startWorker({
  name: "mailtrail",
  bundle,
  config,
  bindings: { ...config.vars, ...secrets },
  persistDir: path.join(tmp, "state"),
  inspectorPort,
});
try {
  const token = await mintToken({ sub: "acct_profile", scope: "send", secret: secrets.JWT_SECRET });
  const res = await fetch(`${app.url}/v1/messages/instrument`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      email_id: "email_0b5f6a4e-2f3c-7d4e-8a9b-0c1d2e3f4a5b",
      recipient: "reader@example.com",
      html: '<html><body><a href="https://example.com/welcome">Read</a></body></html>',
    }),
  });
  if (!res.ok) throw new Error(`instrument answered ${res.status}`);
  const sample = await res.json();
  const click = /href="([^"]*\/c\/[^"]+)"/.exec(sample.html)[1].replaceAll("&amp;", "&");
  const url = values.route === "click" ? click : sample.pixel_url;
  const headers = {
    "user-agent":
      values.route === "click"
        ? "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"
        : "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
  };
  await autocannon({ url, headers, connections: 16, duration: 1 }); // warm up

  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
  const target = targets.find((t) => t.title?.includes("mailtrail")) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  let id = 0;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      id += 1;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  const run = await autocannon({ url, headers, connections: 16, duration: Number(values.seconds) });
  const { result } = await send("Profiler.stop");
  ws.close();

  const { nodes, samples, timeDeltas } = result.profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  samples.forEach((nodeId, i) => {
    const n = byId.get(nodeId);
    const f = n.callFrame;
    const file = f.url ? f.url.split("/").pop() : "";
    const key = `${f.functionName || "(anonymous)"} ${file}${f.lineNumber >= 0 ? `:${f.lineNumber + 1}` : ""}`;
    const dt = timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  const requests = run.requests.total;
  console.log(
    `${values.route}: ${requests} requests in ${values.seconds} s; isolate samples cover ${(total / 1000).toFixed(0)} ms`,
  );
  console.log("self time per request (µs), top 25:");
  for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(
      `${(us / requests).toFixed(1).padStart(8)}  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`,
    );
  }
} finally {
  await app.stop();
  rmSync(tmp, { recursive: true, force: true });
}
