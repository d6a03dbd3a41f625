import { env } from "cloudflare:workers";
import { rendezvousShard } from "../../src/shards/hash";

/** The event shards bound in tests (wrangler.toml: EVENTS_0 … EVENTS_3, all in EVENT_SHARDS). */
export const SHARDS = [0, 1, 2, 3];

export function shardDbOf(index: number): D1Database {
  const db = env[`EVENTS_${index}`];
  if (!db) throw new Error(`EVENTS_${index} is not bound in tests`);
  return db;
}

/** The shard an account without a placement lives on. */
export const hashedShard = (accountId: string): number => rendezvousShard(accountId, SHARDS);

/** A shard other than `not` (the next one round). */
export const otherShard = (not: number): number => (not + 1) % SHARDS.length;

/**
 * `base` with every D1 binding (DB and each EVENTS_i) wrapped to add up D1's own rows_read per
 * binding, for a test that holds a request to its per-shard budget (SPEC §18). `first` and `raw`
 * give no meta, so they run as `all` and are shaped as the caller expects.
 */
export function measuringEnv<E extends object>(base: E): { env: E; rowsRead: Map<string, number> } {
  const rowsRead = new Map<string, number>();
  // batch() takes the runtime's own statements, not proxies of them.
  const unwrapped = new WeakMap<object, D1PreparedStatement>();
  const wrapStatement = (binding: string, stmt: D1PreparedStatement): D1PreparedStatement => {
    const all = async <T>() => {
      const result = await stmt.all<T>();
      rowsRead.set(binding, (rowsRead.get(binding) ?? 0) + result.meta.rows_read);
      return result;
    };
    const proxy = new Proxy(stmt, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrapStatement(binding, target.bind(...values));
        if (prop === "all") return all;
        if (prop === "run") return all;
        if (prop === "first")
          return async (column?: string) => {
            const row = ((await all<Record<string, unknown>>()).results[0] ?? null) as Record<
              string,
              unknown
            > | null;
            return column === undefined ? row : row === null ? null : (row[column] ?? null);
          };
        if (prop === "raw")
          return async (options?: { columnNames?: boolean }) => {
            const { results } = await all<Record<string, unknown>>();
            const rows = results.map((r) => Object.values(r));
            return options?.columnNames ? [Object.keys(results[0] ?? {}), ...rows] : rows;
          };
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    unwrapped.set(proxy, stmt);
    return proxy;
  };
  const wrapDb = (binding: string, db: D1Database): D1Database =>
    new Proxy(db, {
      get(target, prop) {
        if (prop === "prepare") return (sql: string) => wrapStatement(binding, target.prepare(sql));
        if (prop === "batch")
          return async (statements: D1PreparedStatement[]) => {
            const results = await target.batch(statements.map((s) => unwrapped.get(s) ?? s));
            for (const r of results)
              rowsRead.set(binding, (rowsRead.get(binding) ?? 0) + (r.meta?.rows_read ?? 0));
            return results;
          };
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const wrapped: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [name, value] of Object.entries(base)) {
    if ((name === "DB" || /^EVENTS_\d+$/.test(name)) && value)
      wrapped[name] = wrapDb(name, value as D1Database);
  }
  return { env: wrapped as unknown as E, rowsRead };
}
