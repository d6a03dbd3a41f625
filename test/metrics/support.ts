import { env } from "cloudflare:workers";
import { METRIC_COUNTERS, type MetricCounter } from "../../src/db/metrics";
import { listEvents } from "../../src/events/routes";

export type EventJson = Record<string, any> & {
  id: string;
  type: string;
  occurred_at: string;
  email_id: string;
  recipient: string;
  tags: string[];
};

/** A small deterministic PRNG (mulberry32), so a failing case can be replayed. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T,
    chance: (p: number) => next() < p,
  };
}

/** Every event GET /v1/events returns for these parameters, following next_cursor. */
export async function allEvents(account: string, params: Record<string, string>, now: number) {
  const out: EventJson[] = [];
  let after: string | null = null;
  for (;;) {
    const search = new URLSearchParams({ ...params, limit: "1000" });
    if (after) search.set("after", after);
    const page = await listEvents(env, account, search, now);
    out.push(...(page.data as EventJson[]));
    if (!page.has_more) return out;
    after = page.next_cursor;
  }
}

/** The pair each unique counter is about, and which events may be credited with it. */
const UNIQUE: [MetricCounter, (e: EventJson) => boolean][] = [
  ["unique_opened", (e) => e.type === "email.opened"],
  ["unique_opened_by_person", (e) => e.type === "email.opened" && e.tracking?.bot == null],
  ["unique_clicked", (e) => e.type === "email.clicked"],
];

/** Ids of the events credited with each unique counter: the earliest (occurred_at, id) of each pair. */
export function creditedIds(all: EventJson[]): Map<MetricCounter, Set<string>> {
  const out = new Map<MetricCounter, Set<string>>();
  for (const [counter, matches] of UNIQUE) {
    const first = new Map<string, EventJson>();
    for (const e of all) {
      if (!matches(e)) continue;
      const key = `${e.email_id}\u0000${e.recipient}`;
      const held = first.get(key);
      if (!held || e.occurred_at < held.occurred_at || (e.occurred_at === held.occurred_at && e.id < held.id))
        first.set(key, e);
    }
    out.set(counter, new Set([...first.values()].map((e) => e.id)));
  }
  return out;
}

/** The counters one event adds, computed from the public event only. */
export function countersOf(
  e: EventJson,
  credited: Map<MetricCounter, Set<string>>,
): Record<MetricCounter, number> {
  const c = Object.fromEntries(METRIC_COUNTERS.map((k) => [k, 0])) as Record<MetricCounter, number>;
  const type = e.type.slice("email.".length);
  if (type in c) c[type as MetricCounter] = 1;
  if (type === "bounced" && e.bounce_type === "permanent") c.bounced_permanent = 1;
  if (type === "opened") {
    if (e.tracking?.bot == null) c.opened_by_person = 1;
    else c.opened_by_proxy = 1;
  }
  for (const [counter, ids] of credited) if (ids.has(e.id)) c[counter] = 1;
  return c;
}

const partsFormatters = new Map<string, Intl.DateTimeFormat>();

/**
 * An independent bucket label for an event: the local wall-clock fields Intl gives for its instant
 * (hour buckets carry the offset, so both hours of a fall-back stay apart).
 */
export function labelOf(iso: string, tz: string, interval: string): string {
  let f = partsFormatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      timeZoneName: "longOffset",
    });
    partsFormatters.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  const offset = (p.timeZoneName ?? "GMT").replace("GMT", "") || "+00:00";
  const day = `${p.year}-${p.month}-${p.day}`;
  switch (interval) {
    case "hour":
      return `${day}T${p.hour}${offset}`;
    case "day":
      return day;
    case "week": {
      const d = new Date(`${day}T00:00:00Z`);
      d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
      return d.toISOString().slice(0, 10);
    }
    default:
      return `${p.year}-${p.month}`;
  }
}

/** The same label read from a metrics bucket (ISO start with the zone's offset). */
export function labelOfBucket(bucket: string, interval: string): string {
  const wall = bucket.slice(0, 19);
  const offset = bucket.endsWith("Z") ? "+00:00" : bucket.slice(19);
  switch (interval) {
    case "hour":
      return `${wall.slice(0, 13)}${offset}`;
    case "day":
    case "week":
      return wall.slice(0, 10);
    default:
      return wall.slice(0, 7);
  }
}

const recipientDomain = (r: string) => r.slice(r.lastIndexOf("@") + 1);

/**
 * The expected mailbox provider of a recipient in the metrics tests: consumer domains by their
 * provider, the one company domain the tests teach as Microsoft-hosted, everything else other.
 */
export function mailboxProviderOf(recipient: string): string {
  const domain = recipientDomain(recipient);
  const consumer: Record<string, string> = { "gmail.com": "google", "yahoo.com": "yahoo" };
  return consumer[domain] ?? (domain === "hosted-at-microsoft.example" ? "microsoft" : "other");
}

/** The groups an event counts in for a grouping. */
export function groupsOf(e: EventJson, groupBy: string | null): (string | null)[] {
  switch (groupBy) {
    case null:
      return [null];
    case "tag":
      return e.tags.length ? e.tags : [null];
    case "domain":
      return [e.from_domain];
    case "recipient_domain":
      return [recipientDomain(e.recipient)];
    case "mailbox_provider":
      return [mailboxProviderOf(e.recipient)];
    default:
      return [e[groupBy] ?? null];
  }
}
