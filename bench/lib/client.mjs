// HTTP helpers for talking to the benchmark's local Worker.
import { performance } from "node:perf_hooks";

/** A connection the local runtime closed under a reused request (see rebuildRollups in rollups.mjs). */
function connectionLost(error) {
  const cause = error?.cause;
  return (
    error instanceof TypeError &&
    (["ECONNRESET", "EPIPE", "UND_ERR_SOCKET"].includes(cause?.code) ||
      /other side closed/.test(cause?.message ?? ""))
  );
}

export function benchClient(instance, benchKey) {
  const headers = { "x-bench-key": benchKey };
  // Requests sent again after the connection was lost: reported, never hidden.
  const retried = [];
  async function call(
    path,
    { method = "GET", body, extraHeaders = {}, raw = false, idempotent = method === "GET" } = {},
  ) {
    const started = performance.now();
    const send = () =>
      fetch(`${instance.url}${path}`, {
        method,
        headers: {
          ...headers,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...extraHeaders,
        },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
    let res;
    for (let attempt = 1; !res; attempt++) {
      try {
        res = await send();
      } catch (error) {
        // Only a request that may run twice is sent again (each idle pooled connection may be lost).
        if (!idempotent || attempt === 3 || !connectionLost(error)) throw error;
        retried.push(`${method} ${path.split("?")[0]}`);
      }
    }
    const text = await res.text();
    const ms = performance.now() - started;
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
    return { data: raw ? text : JSON.parse(text), ms };
  }
  return {
    call,
    retried,
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
