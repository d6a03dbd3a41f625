import type { Env } from "../env";
import { type MailboxProvider, NO_COMPLAINT_FEEDBACK } from "../mailbox/providers";
import { ZoneOffsets } from "../metrics/buckets";
import { metricsWindow, parseMetricsParams } from "../metrics/query";
import { accountShards, readDbs } from "../shards/route";
import { ROLLUP_ROWS_BUDGET, rollupStatements } from "../store";

/**
 * Reputation rates (SPEC §19) from the metrics rollups, shared by GET /v1/reputation and the alert
 * rules: the window's counters per mailbox provider, read through GET /v1/metrics' own statement
 * builder (one statement, grouped by provider, one bucket per month). A sending-domain filter is not
 * checked against the account's domains here: the route checks it (an unknown one is 400).
 *
 * - bounce_rate = permanent bounces / sent;
 * - complaint_rate = complaints / delivered, counted only over providers that send per-message
 *   complaints (Gmail does not: its deliveries would dilute the rate into a false low, as SES's own
 *   reputation dashboard excludes them too). A provider without complaint feedback has
 *   `complaint_rate: null`, never a false 0;
 * - delivery_rate = delivered / sent; open_rate and click_rate = unique opens / clicks over delivered.
 * Every rate is null when its denominator is 0.
 */

export interface WindowCounters {
  sent: number;
  delivered: number;
  bounced_permanent: number;
  complained: number;
  unique_opened: number;
  unique_clicked: number;
  /** Delivered to providers that send complaints: the complaint rate's denominator. */
  delivered_with_feedback: number;
}

export interface WindowFilters {
  domain?: string | undefined;
  campaign?: string | undefined;
  mailbox_provider?: MailboxProvider | undefined;
}

export interface ProviderCounters extends WindowCounters {
  mailbox_provider: MailboxProvider;
}

const zero = (): WindowCounters => ({
  sent: 0,
  delivered: 0,
  bounced_permanent: 0,
  complained: 0,
  unique_opened: 0,
  unique_clicked: 0,
  delivered_with_feedback: 0,
});

export interface WindowResult {
  window: { start: number; end: number };
  totals: WindowCounters;
  byProvider: ProviderCounters[];
  rowsRead: number;
  /** More rollup rows than the §18 budget: the counters are partial and must not be used. */
  truncated: boolean;
}

/**
 * The statement for the counters of the `ms` before `now` (on the rollups' 15-minute grid), and how
 * to read its rows: separate, so that the alert evaluation can run many in one D1 batch.
 */
export function windowCountersStatement(
  db: D1Database,
  accountId: string,
  ms: number,
  filters: WindowFilters,
  now: number,
): { statement: D1PreparedStatement; read: (result: D1Result<unknown>) => WindowResult } {
  const params = new URLSearchParams({
    start: new Date(now - ms).toISOString(),
    end: new Date(now).toISOString(),
    interval: "month",
    group_by: "mailbox_provider",
  });
  for (const [k, v] of Object.entries(filters)) if (v !== undefined) params.set(k, v);
  const q = parseMetricsParams(params);
  const window = metricsWindow(q, now);
  const { rows: statement, sum } = rollupStatements(
    db,
    accountId,
    q,
    window,
    new ZoneOffsets("UTC", window.start, window.end),
  );
  const read = (result: D1Result<unknown>): WindowResult => {
    const byName = new Map<MailboxProvider, ProviderCounters>();
    const { rows, scanned } = sum(result);
    for (const row of rows) {
      const name = (row.grp ?? "other") as MailboxProvider;
      const p = byName.get(name) ?? { mailbox_provider: name, ...zero() };
      p.sent += row.sent;
      p.delivered += row.delivered;
      p.bounced_permanent += row.bounced_permanent;
      p.complained += row.complained;
      p.unique_opened += row.unique_opened;
      p.unique_clicked += row.unique_clicked;
      if (!NO_COMPLAINT_FEEDBACK.has(name)) p.delivered_with_feedback += row.delivered;
      byName.set(name, p);
    }
    const totals = zero();
    for (const p of byName.values()) {
      for (const k of Object.keys(totals) as (keyof WindowCounters)[]) totals[k] += p[k];
    }
    return {
      window: { start: window.start, end: window.end },
      totals,
      byProvider: [...byName.values()].sort(
        (a, b) => b.sent - a.sent || (a.mailbox_provider < b.mailbox_provider ? -1 : 1),
      ),
      rowsRead: result.meta.rows_read,
      truncated: scanned > ROLLUP_ROWS_BUDGET,
    };
  };
  return { statement, read };
}

/** The counters of the `ms` before `now`, in total and per provider. */
export async function windowCounters(
  env: Env,
  accountId: string,
  ms: number,
  filters: WindowFilters,
  now: number,
): Promise<WindowResult> {
  // The rollups of every shard the account is read from (stripes, a previous placement, SPEC §17).
  const built = readDbs(env, await accountShards(env, accountId)).map(({ db }) =>
    windowCountersStatement(db, accountId, ms, filters, now),
  );
  const results = await Promise.all(built.map((b) => b.statement.all()));
  const [first] = built;
  if (!first) throw new Error("an account is read from at least one shard");
  return first.read(concatResults(results));
}

/**
 * The rows of several shards' answers to the same counters statement, as one answer: `read` adds
 * rows of the same provider up, so the window's counters are the shards' sums.
 */
export function concatResults(results: D1Result<unknown>[]): D1Result<unknown> {
  if (results.length === 1 && results[0]) return results[0];
  return {
    success: true,
    results: results.flatMap((r) => r.results),
    meta: { ...(results[0]?.meta as D1Meta), rows_read: results.reduce((n, r) => n + r.meta.rows_read, 0) },
  } as D1Result<unknown>;
}

const ratio = (num: number, den: number) => (den === 0 ? null : Math.round((num / den) * 1e6) / 1e6);

export const RATE_METRICS = [
  "bounce_rate",
  "complaint_rate",
  "delivery_rate",
  "open_rate",
  "click_rate",
] as const;
export type RateMetric = (typeof RATE_METRICS)[number];

/** A rate of some counters; null where its denominator is 0 (or, for complaints, no provider reports them). */
export function rateOf(metric: RateMetric, c: WindowCounters): number | null {
  switch (metric) {
    case "bounce_rate":
      return ratio(c.bounced_permanent, c.sent);
    case "complaint_rate":
      return ratio(c.complained, c.delivered_with_feedback);
    case "delivery_rate":
      return ratio(c.delivered, c.sent);
    case "open_rate":
      return ratio(c.unique_opened, c.delivered);
    case "click_rate":
      return ratio(c.unique_clicked, c.delivered);
  }
}
