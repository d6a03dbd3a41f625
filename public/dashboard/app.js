// mailtrail dashboard: plain browser JavaScript, no build step, nothing from a CDN. It calls this
// origin's API with the token the person pasted, kept in sessionStorage (this tab only).
"use strict";

const TOKEN_KEY = "mailtrail.token";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const COLORS = {
  delivered: "#15803d",
  bounced: "#b45309",
  complained: "#b91c1c",
  opened_by_person: "#2563eb",
  opened_by_proxy: "#94a3b8",
  clicked: "#7c3aed",
  unique_clicked: "#c4b5fd",
};
const LABELS = {
  delivered: "Delivered",
  bounced: "Bounced",
  complained: "Complained",
  opened_by_person: "Opens by people",
  opened_by_proxy: "Opens by mailbox proxies",
  clicked: "Clicks",
  unique_clicked: "Unique clicks",
};

let eventsCursor = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

class AuthError extends Error {}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) query.set(k, v);
  const res = await fetch(`${path}?${query}`, { headers: { authorization: `Bearer ${token()}` } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new AuthError(body.error?.message ?? "the token was refused");
  if (!res.ok) {
    const e = body.error ?? {};
    throw new Error(`${e.message ?? `HTTP ${res.status}`}${e.param ? ` (${e.param})` : ""}`);
  }
  return body;
}

function formParams(form) {
  return Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]));
}

const fmt = new Intl.NumberFormat();
const pct = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(r < 0.01 && r > 0 ? 2 : 1)}%`);

function renderTotals(t) {
  const stats = [
    ["Sent", fmt.format(t.sent)],
    ["Delivered", fmt.format(t.delivered)],
    ["Delivery rate", pct(t.delivery_rate)],
    ["Bounce rate", pct(t.bounce_rate)],
    ["Complaint rate", pct(t.complaint_rate)],
    ["Open rate", pct(t.open_rate)],
    ["Person open rate", pct(t.person_open_rate)],
    ["Click rate", pct(t.click_rate)],
  ];
  $("totals").replaceChildren(
    ...stats.map(([label, value]) => el("div", { class: "stat", "data-stat": label }, el("b", {}, value), el("span", {}, label))),
  );
}

/** A bucket's label: the wall-clock part of its ISO start, shortened to what the interval needs. */
function bucketLabel(iso, interval) {
  if (interval === "hour") return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  if (interval === "month") return iso.slice(0, 7);
  return iso.slice(5, 10);
}

/**
 * Bars over time, drawn as SVG by hand: grouped (side by side) or stacked. Every bar carries
 * data-series, data-bucket and data-value, and a <title> tooltip.
 */
function renderChart(container, buckets, series, { stacked = false, interval }) {
  container.replaceChildren();
  const rows = buckets.filter((b) => series.some((s) => b[s] > 0));
  if (rows.length === 0) {
    container.append(el("p", { class: "empty" }, "Nothing in this window."));
    return;
  }
  const W = 400;
  const H = 220;
  const pad = { l: 40, r: 6, t: 10, b: 24 };
  const max = niceCeiling(
    Math.max(...buckets.map((b) => (stacked ? series.reduce((s, k) => s + b[k], 0) : Math.max(...series.map((k) => b[k]))))),
  );
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": series.map((s) => LABELS[s]).join(", ") });
  const plotW = W - pad.l - pad.r;
  const plotH = H - pad.t - pad.b;
  const y = (v) => pad.t + plotH - (v / max) * plotH;
  for (const v of [0, max / 2, max]) {
    svg.append(el("svg:line", { class: "axis", x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
    svg.append(el("svg:text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmt.format(v)));
  }
  const slot = plotW / buckets.length;
  const barW = Math.min(40, Math.max(1, stacked ? slot * 0.7 : (slot * 0.8) / series.length));
  const ticks = Math.max(1, Math.ceil(buckets.length / 6));
  buckets.forEach((b, i) => {
    const x0 = pad.l + i * slot + (slot - (stacked ? barW : barW * series.length)) / 2;
    let base = 0;
    series.forEach((s, k) => {
      const v = b[s];
      const x = stacked ? x0 : x0 + k * barW;
      const top = y(base + v);
      const h = y(base) - top;
      const rect = el(
        "svg:rect",
        { x, y: top, width: barW, height: Math.max(0, h), fill: COLORS[s], "data-series": s, "data-bucket": b.bucket, "data-value": v },
        el("svg:title", {}, `${bucketLabel(b.bucket, interval)} · ${LABELS[s]}: ${fmt.format(v)}`),
      );
      svg.append(rect);
      if (stacked) base += v;
    });
    if (i % ticks === 0) {
      svg.append(el("svg:text", { x: pad.l + i * slot + slot / 2, y: H - 8, "text-anchor": "middle" }, bucketLabel(b.bucket, interval)));
    }
  });
  container.append(svg);
  container.append(
    el("div", { class: "legend" }, ...series.map((s) => el("span", {}, el("i", { style: `background:${COLORS[s]}` }), LABELS[s]))),
  );
}

/** 1, 2 or 5 times a power of ten, at least v (and at least 2, so the middle line is a whole number). */
function niceCeiling(v) {
  if (v <= 2) return 2;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** Sums the groups of each bucket: the charts show the whole account over time. */
function perBucket(data) {
  const map = new Map();
  for (const row of data) {
    const into = map.get(row.bucket) ?? { bucket: row.bucket };
    for (const [k, v] of Object.entries(row)) if (typeof v === "number") into[k] = (into[k] ?? 0) + v;
    map.set(row.bucket, into);
  }
  return [...map.values()].sort((a, b) => Date.parse(a.bucket) - Date.parse(b.bucket));
}

const GROUP_COLUMNS = ["sent", "delivered", "bounced", "complained", "opened_by_person", "opened_by_proxy", "unique_opened", "clicked", "unique_clicked"];

function renderGroups(metrics) {
  const card = $("groups-card");
  if (!metrics.group_by) {
    card.hidden = true;
    return;
  }
  card.hidden = false;
  $("groups-title").textContent = `By ${metrics.group_by.replace("_", " ")}`;
  const groups = new Map();
  for (const row of metrics.data) {
    const key = row.group ?? "(none)";
    const into = groups.get(key) ?? Object.fromEntries(GROUP_COLUMNS.map((c) => [c, 0]));
    for (const c of GROUP_COLUMNS) into[c] += row[c];
    groups.set(key, into);
  }
  const head = el("tr", {}, el("th", {}, "Group"), ...GROUP_COLUMNS.map((c) => el("th", { class: "num" }, c.replaceAll("_", " "))));
  const rows = [...groups.entries()]
    .sort((a, b) => b[1].sent + b[1].delivered - (a[1].sent + a[1].delivered))
    .map(([g, c]) => el("tr", { "data-group": g }, el("td", {}, g), ...GROUP_COLUMNS.map((k) => el("td", { class: "num" }, fmt.format(c[k])))));
  $("groups").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

async function loadMetrics() {
  const params = formParams($("controls"));
  const metrics = await api("/v1/metrics", params);
  const { start, end, clamped } = metrics.window;
  $("window").textContent = `${new Date(start).toLocaleString()} – ${new Date(end).toLocaleString()} · buckets of one ${metrics.interval} in ${metrics.tz}${clamped ? " · clamped to 400 days" : ""}`;
  renderTotals(metrics.totals);
  const buckets = perBucket(metrics.data);
  const opts = { interval: metrics.interval };
  renderChart($("chart-delivery"), buckets, ["delivered", "bounced", "complained"], opts);
  renderChart($("chart-opens"), buckets, ["opened_by_person", "opened_by_proxy"], { ...opts, stacked: true });
  renderChart($("chart-clicks"), buckets, ["clicked", "unique_clicked"], opts);
  renderGroups(metrics);
}

const STATUS_TEXT = {
  healthy: "Healthy",
  warning: "Warning: at or above Amazon SES's review threshold",
  at_risk: "At risk: at or above the rate at which Amazon SES may pause sending",
  insufficient_volume: "Not enough mail to judge (fewer than 100 sent)",
};
const METRIC_TEXT = {
  bounce_rate: "Bounce rate",
  complaint_rate: "Complaint rate",
  delivery_rate: "Delivery rate",
  open_rate: "Open rate",
  click_rate: "Click rate",
};

async function loadReputation() {
  const rep = await api("/v1/reputation", { days: "7" });
  const status = $("reputation-status");
  status.dataset.status = rep.status;
  status.replaceChildren(
    el("b", {}, STATUS_TEXT[rep.status] ?? rep.status),
    ` · ${fmt.format(rep.window.sent)} sent · bounce ${pct(rep.bounce_rate)} · complaints ${pct(rep.complaint_rate)}`,
  );
  $("providers").replaceChildren(
    el("thead", {}, el("tr", {}, ...["Mailbox provider", "Sent", "Bounce rate", "Complaint rate"].map((h) => el("th", {}, h)))),
    el(
      "tbody",
      {},
      ...rep.by_mailbox_provider.map((p) =>
        el(
          "tr",
          { "data-provider": p.mailbox_provider },
          el("td", {}, p.mailbox_provider),
          el("td", { class: "num" }, fmt.format(p.sent)),
          el("td", { class: "num" }, pct(p.bounce_rate)),
          // A provider without per-message complaints (Gmail) has no rate: say so, never show 0.
          el("td", { class: "num" }, p.complaint_rate === null ? "no data" : pct(p.complaint_rate)),
        ),
      ),
    ),
  );
  const rules = await api("/v1/alerts", {});
  $("rules").replaceChildren(
    el("thead", {}, el("tr", {}, ...["Rule", "Threshold", "Window", "State", "Last value"].map((h) => el("th", {}, h)))),
    el(
      "tbody",
      {},
      ...rules.data.map((r) =>
        el(
          "tr",
          { "data-rule": r.id, "data-state": r.state },
          el("td", {}, r.description ?? METRIC_TEXT[r.metric] ?? r.metric),
          el("td", { class: "num" }, `${r.metric === "bounce_rate" || r.metric === "complaint_rate" ? ">" : "<"} ${pct(r.threshold)}`),
          el("td", {}, r.window),
          el("td", { class: `state-${r.state}` }, r.state === "firing" ? "Firing" : "OK"),
          el("td", { class: "num" }, pct(r.last_value)),
        ),
      ),
    ),
  );
  const histories = await Promise.all(rules.data.map((r) => api(`/v1/alerts/${r.id}/history`, { limit: "10" })));
  const recent = histories
    .flatMap((h) => h.data)
    .sort((a, b) => (a.occurred_at < b.occurred_at ? 1 : -1))
    .slice(0, 10);
  $("alerts").replaceChildren(
    el("thead", {}, el("tr", {}, ...["Time", "Alert", "Value", "Sent in window"].map((h) => el("th", {}, h)))),
    el(
      "tbody",
      {},
      ...recent.map((a) =>
        el(
          "tr",
          { "data-alert": a.id, "data-type": a.type },
          el("td", { title: a.occurred_at }, new Date(a.occurred_at).toLocaleString()),
          el("td", {}, `${METRIC_TEXT[a.metric] ?? a.metric} ${a.type === "alert.triggered" ? "triggered" : "resolved"}`),
          el("td", { class: "num" }, pct(a.value)),
          el("td", { class: "num" }, fmt.format(a.window.sent)),
        ),
      ),
      ...(recent.length === 0 ? [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No alerts yet."))] : []),
    ),
  );
}

function eventDetail(e) {
  if (e.type === "email.bounced") return [e.bounce_type, e.smtp_response].filter(Boolean).join(" · ");
  if (e.type === "email.complained") return e.complaint_type ?? "";
  if (e.tracking) {
    const who = e.tracking.bot ? `proxy (${e.tracking.bot.source})` : "person";
    return [who, e.tracking.url].filter(Boolean).join(" · ");
  }
  return e.smtp_response ?? "";
}

function eventRow(e, tz) {
  const when = new Intl.DateTimeFormat(undefined, { timeZone: tz, dateStyle: "short", timeStyle: "medium" }).format(new Date(e.occurred_at));
  return el(
    "tr",
    { "data-event": e.id, "data-type": e.type },
    el("td", { title: e.occurred_at }, when),
    el("td", {}, e.type.replace("email.", "")),
    el("td", {}, e.recipient),
    el("td", {}, e.campaign ?? e.template_id ?? ""),
    el("td", {}, ...e.tags.map((t) => el("span", { class: "tag" }, t))),
    el("td", {}, eventDetail(e)),
  );
}

async function loadEvents(more = false) {
  const params = formParams($("event-filters"));
  if (more && eventsCursor) params.after = eventsCursor;
  params.limit = "50";
  const page = await api("/v1/events", params);
  const tz = formParams($("controls")).tz || undefined;
  const table = $("events");
  if (!more) {
    table.replaceChildren(
      el("thead", {}, el("tr", {}, ...["Time", "Type", "Recipient", "Campaign / template", "Tags", "Detail"].map((h) => el("th", {}, h)))),
      el("tbody"),
    );
  }
  const body = table.querySelector("tbody");
  body.append(...page.data.map((e) => eventRow(e, tz)));
  if (!more && page.data.length === 0) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No events match.")));
  eventsCursor = page.next_cursor;
  $("more").hidden = !page.has_more;
}

async function run(task) {
  showError("");
  try {
    await task();
  } catch (err) {
    if (err instanceof AuthError) {
      sessionStorage.removeItem(TOKEN_KEY);
      show();
    }
    showError(err.message);
  }
}

function show() {
  const signedIn = Boolean(token());
  $("signin").hidden = signedIn;
  $("main").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  if (signedIn) {
    run(loadMetrics);
    run(loadReputation);
    run(() => loadEvents());
  }
}

function init() {
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  $("controls").elements.tz.value = tz;
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC"];
  $("zones").replaceChildren(...["UTC", ...zones].map((z) => el("option", { value: z })));

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    show();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    show();
  });
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    run(loadMetrics);
  });
  $("event-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    run(() => loadEvents());
  });
  $("more").addEventListener("click", () => run(() => loadEvents(true)));
  show();
}

init();
