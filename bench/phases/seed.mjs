// Fills local D1 with the query dataset: 100 accounts (Zipf sizes) over 30 days, generated in Node
// and bulk-loaded through the bench route as JSON arrays of rows (one bound parameter per
// statement, under D1's 2 MB value limit), two requests in flight so generation overlaps inserts.
// Records D1's size before and after (meta.size_after) and the rows written, for bytes per event.
import { accountMessages, buildUniverse, jsonChunks, toRow } from "../lib/generate.mjs";
import { progressBar } from "../lib/progress.mjs";

/** What the query cases need to know about an account's data, collected while generating. */
function newProbe(account) {
  return {
    account: account.id,
    rank: account.rank,
    events: 0,
    types: new Map(),
    campaigns: new Map(),
    topics: new Map(),
    templates: new Map(),
    tags: new Map(),
    domains: new Map(),
    recipients: new Map(),
    emails: new Map(),
    middleMessage: null,
  };
}

const bump = (map, key, by = 1) => {
  if (key !== null && key !== undefined) map.set(key, (map.get(key) ?? 0) + by);
};

function observe(probe, message, events, window) {
  const middle = (window.start + window.end) / 2;
  if (
    !probe.middleMessage ||
    Math.abs(message.sent_at - middle) < Math.abs(probe.middleMessage.sent_at - middle)
  ) {
    probe.middleMessage = {
      sent_at: message.sent_at,
      message_id: message.ses_message_id,
      email_id: message.email_id,
    };
  }
  for (const e of events) {
    probe.events += 1;
    bump(probe.types, e.type);
    bump(probe.topics, e.topic);
    bump(probe.templates, e.template_id);
    bump(probe.domains, e.from_domain);
    bump(probe.recipients, e.recipient);
    bump(probe.emails, e.email_id);
    for (const t of e.tags) bump(probe.tags, t);
    if (e.campaign) {
      const c = probe.campaigns.get(e.campaign) ?? { count: 0, at: message.sent_at };
      c.count += 1;
      c.at = Math.min(c.at, message.sent_at);
      probe.campaigns.set(e.campaign, c);
    }
  }
}

const top = (map) => [...map.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));

/** Query parameter values for an account: the common value of each filter, plus the hard ones. */
export function pickValues(probe) {
  const campaigns = [...probe.campaigns.entries()].filter(([, c]) => c.count >= 20);
  const byTime = [...campaigns].sort((a, b) => a[1].at - b[1].at);
  return {
    account: probe.account,
    events: probe.events,
    recipient: top(probe.recipients)[0]?.[0],
    recipientEvents: top(probe.recipients)[0]?.[1],
    email_id: top(probe.emails)[0]?.[0],
    message_id: probe.middleMessage?.message_id,
    topic: top(probe.topics)[0]?.[0],
    template_id: top(probe.templates)[0]?.[0],
    campaignRecent: byTime.at(-1)?.[0],
    campaignOldest: byTime[0]?.[0],
    domain: top(probe.domains)[0]?.[0],
    tag: top(probe.tags)[0]?.[0],
    tags3: top(probe.tags)
      .slice(0, 3)
      .map(([t]) => t)
      .join(","),
    types: Object.fromEntries(probe.types),
  };
}

export async function seedPhase({ client, totalEvents, accounts = 100, probeRanks = [1, 10], now }) {
  const universe = buildUniverse({ accounts, totalEvents, now });
  const started = Date.now();

  // Every account on the 30-day plan, so a 30-day window is never clamped; their sending domains.
  const nowMs = Date.now();
  await client.call("/__bench/load?table=accounts", {
    method: "POST",
    body: universe.accounts.map((a) => [a.id, "scale", nowMs]),
  });
  await client.call("/__bench/load?table=sending_domains", {
    method: "POST",
    body: universe.accounts.flatMap((a) => a.domains.map((d) => [a.id, d, universe.window.start])),
  });
  // Every event shard (SPEC §17): counts and sizes summed.
  const [probeBefore] = await client.sql([{ sql: "SELECT COUNT(*) AS n FROM events", on: "events" }]);
  const sizeBefore = probeBefore.meta.size_after;
  const eventsBefore = probeBefore.results.reduce((s, r) => s + r.n, 0);

  const probes = new Map(
    universe.accounts.filter((a) => probeRanks.includes(a.rank)).map((a) => [a.id, newProbe(a)]),
  );
  const bar = progressBar("  loading events", totalEvents);
  let rowsWritten = 0;
  let mapRowsWritten = 0;
  let loaded = 0;
  let maxSize = sizeBefore;
  const inFlight = new Set();
  const send = async (chunk) => {
    const { data } = await client.call("/__bench/load?table=events", { method: "POST", body: chunk.json });
    const map = await client.call("/__bench/load?table=message_ids", { method: "POST", body: chunk.json });
    mapRowsWritten += map.data.meta.rows_written;
    rowsWritten += data.meta.rows_written;
    loaded += data.meta.changes;
    maxSize = Math.max(maxSize, data.meta.size_after);
    bar.tick(chunk.rows);
  };
  function* rows() {
    for (const account of universe.accounts) {
      const probe = probes.get(account.id);
      for (const { message, events } of accountMessages(universe, account)) {
        if (probe) observe(probe, message, events, universe.window);
        for (const e of events) yield toRow(e);
      }
    }
  }
  for (const chunk of jsonChunks(rows())) {
    const p = send(chunk).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 2) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  bar.done();

  const [after] = await client.sql([{ sql: "SELECT COUNT(*) AS n FROM events", on: "events" }]);
  const sizeAfter = Math.max(maxSize, after.meta.size_after);
  const inserted = after.results.reduce((s, r) => s + r.n, 0) - eventsBefore;
  return {
    universe,
    values: [...probes.values()].map(pickValues),
    result: {
      accounts,
      events_generated: totalEvents,
      events_inserted: inserted,
      seconds: (Date.now() - started) / 1000,
      events_per_second_bulk: Math.round(inserted / ((Date.now() - started) / 1000)),
      d1_size_before: sizeBefore,
      d1_size_after: sizeAfter,
      bytes_per_event: (sizeAfter - sizeBefore) / inserted,
      rows_written_per_event: rowsWritten / loaded,
      // The Message-ID map (one row per email that has a Message-ID), on top of the event's rows.
      map_rows_written_per_event: mapRowsWritten / loaded,
      largest_accounts: universe.accounts.slice(0, 5).map((a) => ({ id: a.id, events: a.events })),
      smallest_account_events: universe.accounts.at(-1).events,
    },
  };
}
