// HTTP helpers for talking to the benchmark's local Worker.
import { performance } from "node:perf_hooks";

export function benchClient(instance, benchKey) {
  const headers = { "x-bench-key": benchKey };
  async function call(path, { method = "GET", body, extraHeaders = {}, raw = false } = {}) {
    const started = performance.now();
    const res = await fetch(`${instance.url}${path}`, {
      method,
      headers: {
        ...headers,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...extraHeaders,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    const ms = performance.now() - started;
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
    return { data: raw ? text : JSON.parse(text), ms };
  }
  return {
    call,
    /** Runs statements directly on the instance's D1; returns [{results, meta, ms}]. */
    sql: async (statements) => (await call("/__bench/sql", { method: "POST", body: { statements } })).data,
    counters: async () => (await call("/__bench/counters")).data,
  };
}

/** Timed request against the public API (no bench key), returning status, JSON body and latency. */
export async function timedFetch(url, init = {}) {
  const started = performance.now();
  const res = await fetch(url, init);
  const text = await res.text();
  const ms = performance.now() - started;
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body, text, ms };
}
