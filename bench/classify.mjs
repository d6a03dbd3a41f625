// `npm run bench -- --classify` (or `node bench/classify.mjs [--markdown]`): the machine-traffic
// measurement of issue 14. No workerd: the classifier (src/tracking/classify.ts) and the burst planner
// (src/tracking/bursts.ts) are pure, so they are bundled with esbuild on the fly and run in Node.
//
// It labels and classifies:
//   1. every user agent of ../shared/fixtures/user-agents/ (the label follows the file it is in),
//   2. every case of test/tracking/fixtures/machine-traffic.json (networks, methods, prefetch
//      headers, timing; known misses included),
//   3. a synthetic click trace (bench/lib/click-trace.mjs) through the edge and the consumer,
// and prints precision and recall per label (person, proxy with the right source, scanner), the share
// of scanner bursts removed, and whether any person's click was removed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { generateTrace, replayTrace } from "./lib/click-trace.mjs";

const ROOT = path.join(import.meta.dirname, "..");
const SHARED_UAS = path.join(ROOT, "..", "shared", "fixtures", "user-agents");

/** The classifier and the burst planner, compiled from the TypeScript sources. */
export async function loadTrafficModules() {
  const result = await build({
    stdin: {
      contents: [
        'export { classifyInteraction, classificationLabel } from "./src/tracking/classify.ts";',
        'export { planBursts, networkOf, linkOf, BURST_LOOKAROUND_MS, BURST_GAP_MS, HUMAN_MIN_GAP_MS, BURST_MIN_LINKS } from "./src/tracking/bursts.ts";',
      ].join("\n"),
      resolveDir: ROOT,
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    write: false,
    logLevel: "silent",
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), "mailtrail-classify-"));
  const file = path.join(dir, "traffic.mjs");
  writeFileSync(file, result.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lines = (file) =>
  readFileSync(path.join(SHARED_UAS, file), "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");

const HOME = { asn: 7922, asOrganization: "Comcast Cable Communications, LLC" };
const PERSON_FILES = [
  "apple-mail-client.txt",
  "human-desktop-browsers.txt",
  "human-mail-clients.txt",
  "human-mobile-browsers.txt",
  "outlook-office365.txt",
];
const OTHER_PROXY_SOURCES = ["seznam", "rambler", "ukrnet", "fastmail", "superhuman", "slack"];

/** Labelled requests from the shared user-agent files: [origin, input, expected label]. */
function sharedCases() {
  const cases = [];
  const add = (origin, input, expected) => cases.push({ origin, input, expected });
  for (const file of PERSON_FILES) {
    for (const ua of lines(file)) {
      add(file, { kind: "open", method: "GET", userAgent: ua, ...HOME }, "person");
      add(file, { kind: "click", method: "GET", userAgent: ua, ...HOME, secondsSinceIssued: 3600 }, "person");
      add(file, { kind: "click", method: "GET", userAgent: ua, ...HOME, secondsSinceIssued: 0 }, "person");
    }
  }
  for (const ua of lines("gmail-image-proxy.txt"))
    add("gmail-image-proxy.txt", { kind: "open", method: "GET", userAgent: ua }, "proxy:google");
  for (const ua of lines("yahoo-mail-proxy.txt")) {
    add("yahoo-mail-proxy.txt", { kind: "open", method: "GET", userAgent: ua }, "proxy:yahoo");
    if (ua.includes("Link Preview"))
      add("yahoo-mail-proxy.txt", { kind: "click", method: "GET", userAgent: ua }, "scanner");
  }
  for (const ua of lines("apple-mail-privacy-protection.txt")) {
    add("apple-mail-privacy-protection.txt", { kind: "open", method: "GET", userAgent: ua }, "proxy:apple");
    add("apple-mail-privacy-protection.txt", { kind: "click", method: "GET", userAgent: ua }, "scanner");
  }
  for (const [i, ua] of lines("other-mail-image-proxies.txt").entries()) {
    add(
      "other-mail-image-proxies.txt",
      { kind: "open", method: "GET", userAgent: ua },
      `proxy:${OTHER_PROXY_SOURCES[i]}`,
    );
  }
  // Lines 1-2 are ordinary Chrome strings that Microsoft's scanners sent from EOP addresses
  // (gophish#973, #2646) seconds after delivery; the rest announce themselves.
  const msContext = [
    { asn: 8075, asOrganization: "Microsoft Corporation", secondsSinceIssued: 4 },
    { asn: 8075, asOrganization: "MICROSOFT-CORP-MSN-AS-BLOCK", secondsSinceIssued: 20 },
  ];
  for (const [i, ua] of lines("link-scanners-prefetchers.txt").entries()) {
    if (msContext[i])
      add(
        "link-scanners-prefetchers.txt",
        { kind: "click", method: "GET", userAgent: ua, ...msContext[i] },
        "scanner",
      );
    else {
      add(
        "link-scanners-prefetchers.txt",
        { kind: "open", method: "GET", userAgent: ua, ...HOME },
        "scanner",
      );
      add(
        "link-scanners-prefetchers.txt",
        { kind: "click", method: "GET", userAgent: ua, ...HOME, secondsSinceIssued: 3600 },
        "scanner",
      );
    }
  }
  return cases;
}

function repoCases() {
  const fixtures = JSON.parse(
    readFileSync(path.join(ROOT, "test", "tracking", "fixtures", "machine-traffic.json"), "utf8"),
  );
  return [
    ...fixtures.cases.map((c) => ({
      origin: "machine-traffic.json",
      input: c.input,
      expected: c.expect,
      name: c.name,
    })),
    ...fixtures.known_misses.map((c) => ({
      origin: "machine-traffic.json (known misses)",
      input: c.input,
      expected: c.expect,
      name: c.name,
    })),
  ];
}

/** Precision and recall per label over [expected, predicted] pairs; proxies must name the right source. */
function scores(pairs) {
  const labels = ["person", "proxy", "scanner"];
  const family = (label) => (label.startsWith("proxy:") ? "proxy" : label);
  return labels.map((label) => {
    const actual = pairs.filter(([e]) => family(e) === label);
    const predicted = pairs.filter(([, p]) => family(p) === label);
    const correct = pairs.filter(([e, p]) => family(e) === label && e === p);
    return {
      label: label === "proxy" ? "proxy (right source)" : label,
      actual: actual.length,
      predicted: predicted.length,
      correct: correct.length,
      precision: predicted.length ? correct.length / predicted.length : null,
      recall: actual.length ? correct.length / actual.length : null,
    };
  });
}

const pct = (x) => (x === null ? "n/a" : `${(100 * x).toFixed(2)}%`);

export async function runClassifyBench({ markdown = false, recipients = 20_000, quiet = false } = {}) {
  const started = Date.now();
  const lib = await loadTrafficModules();
  const labelled = [...sharedCases(), ...repoCases()].map((c) => ({
    ...c,
    predicted: lib.classificationLabel(lib.classifyInteraction(c.input)),
  }));
  const wrong = labelled.filter((c) => c.predicted !== c.expected);

  const personUas = [...lines("human-desktop-browsers.txt"), ...lines("human-mobile-browsers.txt")];
  const scannerUas = [
    ...lines("link-scanners-prefetchers.txt").slice(0, 2),
    ...lines("human-desktop-browsers.txt"),
  ];
  const trace = generateTrace({ recipients, personUas, scannerUas });
  const replay = replayTrace(trace, lib);
  const tracePairs = trace.clicks.map((c) => [
    c.label,
    replay.fate.get(c.id) === "recorded" ? "person" : "scanner",
  ]);

  const people = trace.clicks.filter((c) => c.label === "person");
  const personLost = people.filter((c) => replay.fate.get(c.id) !== "recorded");
  const personLostByBurst = personLost.filter((c) => replay.fate.get(c.id) === "burst");
  const scanners = trace.clicks.filter((c) => c.label === "scanner");
  const scannerFate = (f) => scanners.filter((c) => replay.fate.get(c.id) === f).length;
  const multi = trace.bursts.filter((b) => b.links >= 2);
  const removed = multi.filter((b) => b.clickKeys.every((k) => replay.fate.get(k) !== "recorded"));
  const byConsumer = multi.filter(
    (b) =>
      b.clickKeys.every((k) => replay.fate.get(k) !== "recorded") &&
      b.clickKeys.some((k) => replay.fate.get(k) === "burst"),
  );
  const missedScanners = scanners.filter((c) => replay.fate.get(c.id) === "recorded");
  const missedBy = {};
  for (const c of missedScanners) {
    const b = trace.bursts[c.burst];
    const why = b.links === 1 ? `one-link message, ${c.scanner}` : `${c.scanner}, ${b.links} links`;
    missedBy[why] = (missedBy[why] ?? 0) + 1;
  }

  const fixtureScores = scores(labelled.map((c) => [c.expected, c.predicted]));
  const traceScores = scores(tracePairs);
  const allScores = scores([...labelled.map((c) => [c.expected, c.predicted]), ...tracePairs]);

  const result = {
    fixtures: {
      cases: labelled.length,
      wrong: wrong.map((c) => ({
        origin: c.origin,
        name: c.name,
        ua: c.input.userAgent,
        expected: c.expected,
        predicted: c.predicted,
      })),
    },
    scores: { fixtures: fixtureScores, trace: traceScores, all: allScores },
    trace: {
      recipients,
      clicks: trace.clicks.length,
      batches: replay.batches,
      redelivered: replay.redelivered,
      people: people.length,
      peopleRecorded: people.length - personLost.length,
      personLost: personLost.length,
      personLostByBurst: personLostByBurst.length,
      personLostCloudPc: personLost.filter((c) => c.cloudPc).length,
      scanners: scanners.length,
      scannerEdge: scannerFate("edge"),
      scannerBurst: scannerFate("burst"),
      scannerRecorded: missedScanners.length,
      multiLinkBursts: multi.length,
      burstsRemoved: removed.length,
      burstsRemovedByConsumer: byConsumer.length,
      missedBy,
    },
    thresholds: {
      BURST_GAP_MS: lib.BURST_GAP_MS,
      BURST_MIN_LINKS: lib.BURST_MIN_LINKS,
      HUMAN_MIN_GAP_MS: lib.HUMAN_MIN_GAP_MS,
    },
    seconds: (Date.now() - started) / 1000,
  };
  if (!quiet) console.log(markdown ? toMarkdown(result) : toText(result));
  return result;
}

function table(rows) {
  const head =
    "| label | actual | predicted | correct | precision | recall |\n| --- | ---: | ---: | ---: | ---: | ---: |";
  return [
    head,
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.actual} | ${r.predicted} | ${r.correct} | ${pct(r.precision)} | ${pct(r.recall)} |`,
    ),
  ].join("\n");
}

function targets(r) {
  const t = r.trace;
  const all = Object.fromEntries(r.scores.all.map((s) => [s.label.split(" ")[0], s]));
  const removed = t.burstsRemoved / t.multiLinkBursts;
  return [
    ["people recorded (100%)", pct(all.person.recall), all.person.recall === 1],
    ["proxies with the right source (≥ 99%)", pct(all.proxy.recall), all.proxy.recall >= 0.99],
    ["scanners dropped (≥ 99%)", pct(all.scanner.recall), all.scanner.recall >= 0.99],
    ["synthetic multi-link bursts removed (≥ 95%)", pct(removed), removed >= 0.95],
    [
      "people's clicks removed by burst detection (0)",
      String(t.personLostByBurst),
      t.personLostByBurst === 0,
    ],
  ];
}

function toMarkdown(r) {
  const t = r.trace;
  const out = [];
  out.push(
    `Labelled fixtures (${r.fixtures.cases} requests: every UA of \`../shared/fixtures/user-agents/\` and every case of \`test/tracking/fixtures/machine-traffic.json\`):`,
    "",
    table(r.scores.fixtures),
    "",
  );
  out.push(
    `Synthetic trace (${t.recipients.toLocaleString("en")} recipients, ${t.clicks.toLocaleString("en")} clicks, ${t.batches.toLocaleString("en")} consumer batches, ${t.redelivered} delivered twice):`,
    "",
    table(r.scores.trace),
    "",
  );
  out.push("Everything together:", "", table(r.scores.all), "");
  out.push("| target | measured | met |", "| --- | ---: | --- |");
  for (const [name, value, met] of targets(r)) out.push(`| ${name} | ${value} | ${met ? "yes" : "**no**"} |`);
  out.push("");
  out.push(
    `Scanner clicks in the trace: ${t.scanners.toLocaleString("en")}; dropped at the edge ${t.scannerEdge.toLocaleString("en")}, by burst detection ${t.scannerBurst.toLocaleString("en")}, recorded ${t.scannerRecorded.toLocaleString("en")}. Multi-link bursts: ${t.multiLinkBursts.toLocaleString("en")}, fully removed ${t.burstsRemoved.toLocaleString("en")} (${pct(t.burstsRemoved / t.multiLinkBursts)}), ${t.burstsRemovedByConsumer.toLocaleString("en")} of them only thanks to the consumer.`,
  );
  out.push(
    `People's clicks: ${t.people.toLocaleString("en")}; recorded ${t.peopleRecorded.toLocaleString("en")}; lost ${t.personLost} (${t.personLostCloudPc} from Microsoft's network within 300 s of the send, ${t.personLostByBurst} by burst detection).`,
  );
  out.push("", "Scanner clicks still recorded, by cause:", "");
  for (const [why, n] of Object.entries(t.missedBy).sort((a, b) => b[1] - a[1])) out.push(`- ${why}: ${n}`);
  if (r.fixtures.wrong.length) {
    out.push("", "Fixture requests not classified as labelled:", "");
    for (const w of r.fixtures.wrong)
      out.push(
        `- ${w.origin}${w.name ? ` (${w.name})` : ""}: expected ${w.expected}, got ${w.predicted}: \`${w.ua}\``,
      );
  }
  return out.join("\n");
}

function toText(r) {
  return `${toMarkdown(r)}\n\n(${r.seconds.toFixed(1)} s; thresholds ${JSON.stringify(r.thresholds)})`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const markdown = process.argv.includes("--markdown");
  const n = process.argv.find((a) => a.startsWith("--recipients="));
  await runClassifyBench({ markdown, recipients: n ? Number(n.split("=")[1]) : undefined });
}
