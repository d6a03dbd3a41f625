// A synthetic click trace for `npm run bench -- --classify`: people clicking one or two links at
// human pace and scanner bursts at machine pace, from realistic networks, run through the edge
// classifier and then through the consumer's burst planner batch by batch (with a simulated store of
// written clicks and dropped-burst marks, as src/tracking/burst-store.ts keeps them in D1).
//
// Distributions and where they come from:
// - Scanner burst start after the send: the histogram a sender published for 836 bursts
//   (putyourlightson/craft-campaign#546): 0-10 s 0.5%, 10-20 s 2.2%, 20-60 s 66.4%, 1-5 min 28.3%,
//   5-30 min 1.9%, 1-24 h 0.7% (median 43 s).
// - Scanner sweep: every link of the message, "all ~9-10 links in one sub-second sweep" (same
//   source); some sweeps share one timestamp (support.arternal.com: "all clicks share the same
//   timestamp"); a minority is slower (up to 1.8 s between links) to exercise the 3-link rule.
// - Scanner networks: Microsoft (Defender / Safe Links, gophish#973, #2646), the gateways' own
//   networks (Proofpoint, Mimecast, Barracuda, Cisco), and clouds and hosters where nothing marks the
//   network (AWS, Google Cloud, OVH, Hetzner, DigitalOcean: resend-node#901 saw an unknown network).
// - People: one link (70%) or two (30%); the first click from seconds (password resets) to hours
//   after the send; a second link 1-2 s later for 8% (opening links in background tabs), otherwise
//   a log-normal gap with a 20 s median. Human pace means at least 1 s between two different links.
//   1% of people browse from Microsoft's network (Windows 365 / Azure Virtual Desktop).
// - Queue: Cloudflare Queues' consumer settings of wrangler.toml (max_batch_size 100,
//   max_batch_timeout 2 s), so bursts straddle batches; 2% of batches are delivered twice.

const RESIDENTIAL = [
  [7922, "Comcast Cable Communications, LLC"],
  [20115, "Charter Communications"],
  [7018, "AT&T Services, Inc."],
  [701, "Verizon Business"],
  [21928, "T-Mobile USA, Inc."],
  [3320, "Deutsche Telekom AG"],
  [3209, "Vodafone GmbH"],
  [3215, "Orange S.A."],
  [2856, "British Telecommunications PLC"],
  [1136, "KPN B.V."],
  [55836, "Reliance Jio Infocomm Limited"],
];
const SCANNER_NETWORKS = [
  // [weight, asn, organisation, name]
  [30, 8075, "Microsoft Corporation", "microsoft"],
  [12, 26211, "Proofpoint, Inc.", "proofpoint"],
  [10, 30031, "Mimecast Ltd", "mimecast"],
  [5, 15324, "Barracuda Networks, Inc.", "barracuda"],
  [3, 16417, "Cisco Systems Ironport Division", "cisco-ironport"],
  [20, 16509, "Amazon.com, Inc.", "aws"],
  [10, 396982, "Google LLC", "google-cloud"],
  [4, 16276, "OVH SAS", "ovh"],
  [3, 24940, "Hetzner Online GmbH", "hetzner"],
  [3, 14061, "DigitalOcean, LLC", "digitalocean"],
];
const START_HISTOGRAM = [
  // [share, from s, to s]
  [0.005, 0, 10],
  [0.022, 10, 20],
  [0.664, 20, 60],
  [0.283, 60, 300],
  [0.019, 300, 1800],
  [0.007, 3600, 86400],
];

export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickWeighted(random, items, weight) {
  const total = items.reduce((s, i) => s + weight(i), 0);
  let r = random() * total;
  for (const item of items) {
    r -= weight(item);
    if (r <= 0) return item;
  }
  return items[items.length - 1];
}

const logNormal = (random, median, sigma) => {
  const u = Math.max(random(), 1e-12);
  const v = random();
  return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
};

function linkCount(random) {
  const r = random();
  if (r < 0.2) return 1;
  if (r < 0.35) return 2;
  if (r < 0.7) return 3 + Math.floor(random() * 3);
  return 6 + Math.floor(random() * 7);
}

/**
 * Generates the trace: every click with its true label, its request signals and its time.
 * `personUas` / `scannerUas` are user agents to draw from (the shared fixtures' browsers).
 */
export function generateTrace({ recipients = 20_000, seed = 14, personUas, scannerUas }) {
  const random = mulberry32(seed);
  const clicks = [];
  const bursts = [];
  const sendStart = 1_780_000_000_000;
  for (let r = 0; r < recipients; r += 1) {
    const account = `acct_${r % 7}`;
    const email_id = `email_${r}`;
    const recipient = `r${r}@example.com`;
    const sentAt = sendStart + Math.floor(random() * 3_600_000);
    const links = Array.from({ length: linkCount(random) }, (_, i) => `https://shop.example.com/${r}/${i}`);
    const base = { account, email_id, recipient, sentAt };

    if (random() < 0.5) {
      const cloudPc = random() < 0.01;
      const [asn, org] = cloudPc
        ? [8075, "Microsoft Corporation"]
        : RESIDENTIAL[Math.floor(random() * RESIDENTIAL.length)];
      const ip = `${10 + (asn % 200)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${1 + Math.floor(random() * 254)}`;
      const ua = personUas[Math.floor(random() * personUas.length)];
      const first = random() < 0.03 ? 5 + random() * 55 : Math.max(5, logNormal(random, 1800, 1.5));
      const order = shuffle(random, links);
      const n = links.length >= 2 && random() < 0.3 ? 2 : 1;
      let at = sentAt + Math.round(first * 1000);
      for (let i = 0; i < n; i += 1) {
        if (i > 0) {
          const gap = random() < 0.08 ? 1 + random() : Math.max(2, logNormal(random, 20, 1));
          at += Math.round(gap * 1000);
        }
        clicks.push({ ...base, label: "person", url: order[i], at, ua, asn, org, ip, cloudPc });
      }
    }

    if (random() < 0.3) {
      const [, asn, org, name] = pickWeighted(random, SCANNER_NETWORKS, (n) => n[0]);
      const [, from, to] = pickWeighted(random, START_HISTOGRAM, (b) => b[0]);
      const start = from + random() * (to - from);
      const style = random();
      const ua = scannerUas[Math.floor(random() * scannerUas.length)];
      const order = shuffle(random, links);
      const burst = { id: bursts.length, links: links.length, network: name, clickKeys: [] };
      let at = sentAt + Math.round(start * 1000);
      for (const [i, url] of order.entries()) {
        if (i > 0) {
          const gap = style < 0.05 ? random() * 5 : style < 0.9 ? 5 + random() * 245 : 300 + random() * 1500;
          at += Math.round(gap);
        }
        const ip = `${20 + (asn % 200)}.${asn % 256}.${Math.floor(random() * 256)}.${1 + Math.floor(random() * 254)}`;
        const click = {
          ...base,
          label: "scanner",
          url,
          at,
          ua,
          asn,
          org,
          ip,
          burst: burst.id,
          scanner: name,
        };
        clicks.push(click);
      }
      bursts.push(burst);
    }
  }
  clicks.sort((a, b) => a.at - b.at);
  clicks.forEach((c, i) => {
    c.id = `evt_${i.toString(16).padStart(8, "0")}`;
    if (c.burst !== undefined) bursts[c.burst].clickKeys.push(c.id);
  });
  return { clicks, bursts };
}

function shuffle(random, list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Runs the trace through the edge classifier, then the queue in batches through planBursts with a
 * simulated store. Returns, per click id, its fate: "recorded", "edge" (dropped at the edge) or
 * "burst" (dropped or removed by the consumer).
 */
export function replayTrace(trace, lib, { seed = 41, batchSize = 100, batchTimeoutMs = 2000 } = {}) {
  const random = mulberry32(seed);
  const fate = new Map();
  const queued = [];
  for (const c of trace.clicks) {
    const verdict = lib.classifyInteraction({
      kind: "click",
      method: "GET",
      userAgent: c.ua,
      asn: c.asn,
      asOrganization: c.org,
      secondsSinceIssued: Math.max(0, Math.floor((c.at - c.sentAt) / 1000)),
    });
    if (verdict.action === "drop") {
      fate.set(c.id, "edge");
      continue;
    }
    fate.set(c.id, "pending");
    queued.push({ ...c, network: lib.networkOf(c.asn, c.ip), arrives: c.at + Math.floor(random() * 50) });
  }
  queued.sort((a, b) => a.arrives - b.arrives);

  // The consumer: a batch closes at 100 messages or 2 s after its first message.
  const batches = [];
  let current = [];
  for (const m of queued) {
    if (
      current.length > 0 &&
      (current.length >= batchSize || m.arrives - current[0].arrives > batchTimeoutMs)
    ) {
      batches.push(current);
      current = [];
    }
    current.push(m);
  }
  if (current.length > 0) batches.push(current);

  const stored = new Map(); // group -> Map(id -> click)
  const marks = new Map(); // group -> Map(id -> click)
  const groupOf = (c) => `${c.account}\u0000${c.email_id}\u0000${c.recipient}`;
  const asBurstClick = (c) => ({ key: c.id, at: c.at, network: c.network, link: lib.linkOf(c.url, null) });
  let redelivered = 0;
  const consume = (batch) => {
    const groups = new Map();
    for (const c of batch) {
      const g = groupOf(c);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(c);
    }
    for (const [g, arriving] of groups) {
      const from = Math.min(...arriving.map((c) => c.at)) - lib.BURST_LOOKAROUND_MS;
      const to = Math.max(...arriving.map((c) => c.at)) + lib.BURST_LOOKAROUND_MS;
      const inWindow = (c) => c.at >= from && c.at <= to;
      const groupStored = stored.get(g) ?? new Map();
      const groupMarks = marks.get(g) ?? new Map();
      const plan = lib.planBursts({
        arriving: arriving.map((c) => ({ click: asBurstClick(c), item: c })),
        stored: [...groupStored.values()].filter(inWindow).map((c) => ({ click: asBurstClick(c), item: c })),
        marked: [...groupMarks.values()].filter(inWindow).map(asBurstClick),
      });
      const dropped = new Set(plan.drop.map((c) => c.id));
      for (const c of plan.remove) {
        groupStored.delete(c.id);
        fate.set(c.id, "burst");
      }
      for (const m of plan.mark)
        groupMarks.set(m.key, { id: m.key, at: m.at, network: m.network, url: m.link.split("\u0000")[0] });
      for (const c of arriving) {
        if (dropped.has(c.id)) fate.set(c.id, "burst");
        else if (!groupStored.has(c.id)) {
          groupStored.set(c.id, c);
          fate.set(c.id, "recorded");
        }
      }
      stored.set(g, groupStored);
      marks.set(g, groupMarks);
    }
  };
  for (const batch of batches) {
    consume(batch);
    if (random() < 0.02) {
      redelivered += 1;
      consume(batch);
    }
  }
  return { fate, batches: batches.length, redelivered };
}
