import { ROLLUP_BUCKET_MS } from "../db/metrics";
import { DAY_MS } from "../lib/params";

/**
 * Re-bucketing 15-minute UTC rollups into hours, days, weeks (from Monday) and months of an IANA
 * time zone, exactly: every UTC offset and every DST change in tzdb falls on a quarter hour of UTC,
 * so every local bucket is a union of whole rollup buckets.
 *
 * A zone's offsets over the window are read once from Intl.DateTimeFormat (sampled every 12 hours,
 * each change then located to the quarter hour by bisection); the rest is arithmetic. A bucket
 * starts at the first instant whose local time reaches the bucket's wall-clock start: local
 * midnight, or the end of a DST gap that swallowed it. An hour bucket is one wall-clock hour under
 * one offset: during a fall-back the repeated hour (or half hour, on Lord Howe) is a bucket of its
 * own, told apart by the offset in its ISO start, while a day holds both.
 */

export const INTERVALS = ["hour", "day", "week", "month"] as const;
export type Interval = (typeof INTERVALS)[number];

const HOUR_MS = 3_600_000;
const SAMPLE_MS = 12 * HOUR_MS;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The canonical name of a time zone, or null when Intl does not know it. */
export function canonicalTimeZone(tz: string): string | null {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(tz, f);
  }
  return f;
}

/** The zone's UTC offset at instant t, in ms (local = t + offset). */
export function offsetAt(tz: string, t: number): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(new Date(t))) {
    if (p.type !== "literal") parts[p.type] = Number(p.value);
  }
  const wall = Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  );
  return wall - (t - (((t % 1000) + 1000) % 1000));
}

/** A piecewise-constant offset function over [from, to]: offsets and the instants they start at. */
export class ZoneOffsets {
  /** changes[i] is the instant from which offsets[i] applies (changes[0] = -Infinity). */
  private readonly changes: number[] = [Number.NEGATIVE_INFINITY];
  private readonly offsets: number[];

  constructor(
    readonly tz: string,
    from: number,
    to: number,
  ) {
    // Start a month early: a bucket's start can lie up to a month before the window.
    const lo = Math.floor((from - 32 * DAY_MS) / ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS;
    let prevT = lo;
    let prev = offsetAt(tz, lo);
    this.offsets = [prev];
    for (let t = lo + SAMPLE_MS; t < to + SAMPLE_MS; t += SAMPLE_MS) {
      const o = offsetAt(tz, t);
      if (o !== prev) {
        // Bisect to the first quarter hour with the new offset.
        let a = prevT;
        let b = t;
        while (b - a > ROLLUP_BUCKET_MS) {
          const mid = a + Math.floor((b - a) / 2 / ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS;
          if (offsetAt(tz, mid) === prev) a = mid;
          else b = mid;
        }
        this.changes.push(b);
        this.offsets.push(offsetAt(tz, b));
        prev = o;
      }
      prevT = t;
    }
  }

  /**
   * SQL for the offset at a rollup bucket (`column`, epoch ms), as a CASE over the zone's changes:
   * the local bucket of every row can then be computed in SQL (see labelSql).
   */
  offsetSql(column: string): string {
    if (this.offsets.length === 1) return String(this.offsets[0]);
    const whens = this.changes
      .slice(1)
      .map((from, i) => `WHEN ${column} < ${from} THEN ${this.offsets[i]}`)
      .join(" ");
    return `(CASE ${whens} ELSE ${this.offsets.at(-1)} END)`;
  }

  /**
   * Whether the zone is at UTC all along (UTC itself, or a zone without offset over the window):
   * then every local day, week and month is a union of whole UTC days, which the coarse daily
   * rollups answer.
   */
  alwaysUtc(): boolean {
    return this.offsets.every((o) => o === 0);
  }

  /**
   * Whether every offset of the zone over the window is a whole number of hours and every change
   * falls on a whole UTC hour: then each UTC hour lies in one local hour, day, week and month, and
   * the hourly account totals answer any interval (UTC, the Americas, Europe; not Asia/Kolkata).
   */
  wholeHours(): boolean {
    return (
      this.offsets.every((o) => o % HOUR_MS === 0) &&
      this.changes.every((c) => !Number.isFinite(c) || c % HOUR_MS === 0)
    );
  }

  private indexAt(t: number): number {
    let lo = 0;
    let hi = this.changes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.changes[mid] as number) <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  at(t: number): number {
    return this.offsets[this.indexAt(t)] as number;
  }

  /** The start of the local bucket holding instant t (t on the quarter-hour grid). */
  bucketStart(t: number, interval: Interval): number {
    const wallStart = truncateWall(t + this.at(t), interval);
    let i = this.indexAt(t);
    for (;;) {
      const o = this.offsets[i] as number;
      const candidate = wallStart - o;
      const from = this.changes[i] as number;
      if (candidate >= from) return candidate;
      // An hour is one offset's: a repeated wall-clock hour (fall-back) is a bucket of its own.
      if (interval === "hour") return from;
      // The bucket began before this offset applied: does the instant just before belong to it?
      const prevOffset = this.offsets[i - 1] as number;
      if (from - ROLLUP_BUCKET_MS + prevOffset < wallStart) return from; // a gap swallowed the start
      i -= 1;
    }
  }

  /** ISO 8601 with the zone's offset at that instant, e.g. 2026-03-29T00:00:00+05:30. */
  iso(t: number): string {
    const o = this.at(t);
    const wall = new Date(t + o).toISOString().slice(0, 19);
    if (o === 0) return `${wall}Z`;
    const abs = Math.abs(o) / 60_000;
    const hh = String(Math.floor(abs / 60)).padStart(2, "0");
    const mm = String(abs % 60).padStart(2, "0");
    return `${wall}${o < 0 ? "-" : "+"}${hh}:${mm}`;
  }
}

/** Wall-clock ms (as if UTC) truncated to the start of its hour, day, Monday or month. */
function truncateWall(wall: number, interval: Interval): number {
  const d = new Date(wall);
  switch (interval) {
    case "hour":
      return Math.floor(wall / HOUR_MS) * HOUR_MS;
    case "day":
      return Math.floor(wall / DAY_MS) * DAY_MS;
    case "week": {
      const day = Math.floor(wall / DAY_MS) * DAY_MS;
      return day - ((d.getUTCDay() + 6) % 7) * DAY_MS;
    }
    case "month":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }
}

/**
 * SQL expressions that give every instant of one local bucket the same label (and instants of
 * different buckets different labels), from the instant's wall-clock time: its hour and offset
 * (an hour is one offset's), its day, its Monday-based week, or its month. Grouping rollup rows by
 * them sums each local bucket in SQL; the bucket's start is then found from any of its instants.
 */
export function labelSql(zone: ZoneOffsets, column: string, interval: Interval): [string, string] {
  const offset = zone.offsetSql(column);
  const wall = `(${column} + ${offset})`;
  switch (interval) {
    case "hour":
      return [`${wall} / ${HOUR_MS}`, offset];
    case "day":
      return [`${wall} / ${DAY_MS}`, "0"];
    case "week":
      // 1970-01-01 was a Thursday: day 4 is the first Monday.
      return [`(${wall} / ${DAY_MS} + 3) / 7`, "0"];
    case "month":
      return [`strftime('%Y%m', ${wall} / 1000, 'unixepoch')`, "0"];
  }
}
