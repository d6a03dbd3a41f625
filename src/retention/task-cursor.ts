import type { Env } from "../env";

/**
 * Where a scheduled task stopped, so the next run resumes there: each run does a bounded slice and
 * successive runs cover everything. Kept in the SUPPRESSIONS namespace under `meta:`, outside the
 * mirror's `sup:` prefix. A lost or stale cursor only means some work is redone, never skipped for
 * good: every pass restarts from the beginning once it reaches the end.
 */
export async function readCursor<T>(env: Env, key: string): Promise<T | null> {
  try {
    return await env.SUPPRESSIONS.get<T>(key, "json");
  } catch {
    return null; // unreadable JSON: start over rather than fail the run
  }
}

export async function writeCursor(env: Env, key: string, value: object | null): Promise<void> {
  if (value === null) await env.SUPPRESSIONS.delete(key);
  else await env.SUPPRESSIONS.put(key, JSON.stringify(value));
}
