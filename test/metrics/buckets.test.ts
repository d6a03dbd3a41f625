import { describe, expect, it } from "vitest";
import { type Interval, ZoneOffsets } from "../../src/metrics/buckets";

const t = (s: string) => Date.parse(s);

/**
 * Bucket starts around the awkward cases: half- and quarter-hour zones, a DST gap that swallows
 * local midnight (America/Santiago), a fall-back hour (America/New_York), and Lord Howe's
 * half-hour DST shift.
 */
const CASES: [string, Interval, string, string][] = [
  ["UTC", "day", "2026-03-08T23:59:00Z", "2026-03-08T00:00:00Z"],
  ["Asia/Kolkata", "day", "2026-03-08T18:29:00Z", "2026-03-08T00:00:00+05:30"],
  ["Asia/Kolkata", "day", "2026-03-08T18:30:00Z", "2026-03-09T00:00:00+05:30"],
  ["Asia/Kolkata", "hour", "2026-03-08T18:44:00Z", "2026-03-09T00:00:00+05:30"],
  ["Asia/Kathmandu", "hour", "2026-03-08T18:14:00Z", "2026-03-08T23:00:00+05:45"],
  ["Australia/Eucla", "day", "2026-03-08T15:15:00Z", "2026-03-09T00:00:00+08:45"],
  ["America/New_York", "day", "2026-03-08T12:00:00Z", "2026-03-08T00:00:00-05:00"],
  ["America/New_York", "day", "2026-03-09T03:59:00Z", "2026-03-08T00:00:00-05:00"],
  ["America/New_York", "hour", "2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00"],
  ["America/New_York", "hour", "2026-11-01T05:30:00Z", "2026-11-01T01:00:00-04:00"],
  ["America/New_York", "hour", "2026-11-01T06:30:00Z", "2026-11-01T01:00:00-05:00"],
  ["America/New_York", "day", "2026-11-01T06:30:00Z", "2026-11-01T00:00:00-04:00"],
  ["America/New_York", "week", "2026-11-04T12:00:00Z", "2026-11-02T00:00:00-05:00"],
  ["America/New_York", "week", "2026-11-01T12:00:00Z", "2026-10-26T00:00:00-04:00"],
  ["America/New_York", "month", "2026-11-20T12:00:00Z", "2026-11-01T00:00:00-04:00"],
  ["Europe/Berlin", "month", "2026-03-31T21:59:00Z", "2026-03-01T00:00:00+01:00"],
  ["Europe/Berlin", "month", "2026-03-31T22:00:00Z", "2026-04-01T00:00:00+02:00"],
  ["America/Santiago", "day", "2026-09-06T05:00:00Z", "2026-09-06T01:00:00-03:00"],
  ["America/Santiago", "day", "2026-09-06T03:59:00Z", "2026-09-05T00:00:00-04:00"],
  ["Australia/Lord_Howe", "hour", "2026-04-04T15:00:00Z", "2026-04-05T01:30:00+10:30"],
  ["Australia/Lord_Howe", "hour", "2026-04-04T14:45:00Z", "2026-04-05T01:00:00+11:00"],
  ["Australia/Lord_Howe", "day", "2026-04-05T06:00:00Z", "2026-04-05T00:00:00+11:00"],
  ["Australia/Lord_Howe", "hour", "2026-10-03T15:30:00Z", "2026-10-04T02:30:00+11:00"],
];

describe("ZoneOffsets.bucketStart", () => {
  it.each(CASES)("%s %s of %s starts at %s", (tz, interval, instant, expected) => {
    const at = Math.floor(t(instant) / 900_000) * 900_000;
    const zone = new ZoneOffsets(tz, at - 40 * 86_400_000, at + 86_400_000);
    const start = zone.bucketStart(at, interval);
    expect(zone.iso(start)).toBe(expected);
    expect(start).toBe(t(expected));
  });
});
