import { DAY_MS } from "../lib/params";

/**
 * Scanner bursts (SPEC §5): what the edge cannot see, because each click is one request. A link
 * scanner walks a message: it fetches every link of one message and recipient within a second or
 * two, from one network. No person does that, so none of a burst is recorded, including the clicks
 * an earlier queue batch already wrote. Pure: the consumer (src/tracking/burst-store.ts) reads the
 * recent clicks of each recipient, this module decides, and the store writes the decision.
 *
 * Thresholds, and where they come from:
 * - Scanners sweep every link in well under a second. putyourlightson/craft-campaign#546 (a sender's
 *   logs, 836 bursts): "all ~9-10 links in one sub-second sweep", bursts defined there as 5 clicks in
 *   1 s or less; support.arternal.com ("Smart Mail clickthroughs triggered by email security
 *   scanners"): every link "within 1–5 seconds", "all clicks share the same timestamp".
 * - The same sender measured when bursts start: median 43 s after the send, only 0.5% within 10 s
 *   and 31% after a full minute. Time since the send is therefore no rule here; the shape of the
 *   clicks is. Timing alone never drops a click: a burst needs two distinct links from one network.
 * - Two distinct links of one email from one source within 5 s are a scanner for warmbly
 *   (warmbly/warmbly `TrackingClickBurstSeconds = 5`, "a person follows one link at a time").
 *   mailtrail is stricter for two links (1 s) and uses SPEC §5's "about two seconds" for three or
 *   more, because a person may open two links in background tabs a second or two apart:
 *     * 3 or more distinct links, each within BURST_GAP_MS of the previous click: a burst;
 *     * 2 distinct links clicked less than HUMAN_MIN_GAP_MS apart from the same address prefix (/24,
 *       /48): a burst ("faster than any person could": a click hands focus to the browser; coming
 *       back and aiming at another link takes longer than a second). The same ASN is not enough
 *       here: behind a carrier or corporate NAT two people share an ASN, and two of them clicking
 *       two links of one newsletter within a second must not lose a click.
 * - A stored click more than STORED_CLICK_KEPT_AFTER_MS older than the arriving clicks that would
 *   make it part of a burst is never deleted: by then a person may have seen it counted, and its
 *   webhook (sent 5 s after it was written) may be out.
 * - "One network": the ASN Cloudflare reports (`request.cf.asn`); scanners rotate addresses within
 *   their provider's network (gophish#2646: 40.94.89.x, several addresses for one message), so a
 *   single IP would split one burst. Without an ASN, the /24 (IPv4) or /48 (IPv6) prefix stands in.
 */

/** Consecutive clicks at most this far apart belong to one run (SPEC §5: "about two seconds"). */
export const BURST_GAP_MS = 2_000;
/** A run with this many distinct links is a burst. */
export const BURST_MIN_LINKS = 3;
/** Two distinct links closer than this, from one address prefix, are a burst on their own. */
export const HUMAN_MIN_GAP_MS = 1_000;
/** A stored click this much older than a batch's newest arriving click is never removed. */
export const STORED_CLICK_KEPT_AFTER_MS = 5_000;
/**
 * How far around a batch's clicks the consumer reads stored clicks and dropped-burst marks. A run
 * chains clicks at most BURST_GAP_MS apart, so this bounds the runs it can see whole (300 clicks).
 */
export const BURST_LOOKAROUND_MS = 10 * 60_000;
/** Dropped-burst marks are kept this long: past any queue retry of a burst's last click. */
export const BURST_MARK_RETENTION_MS = 2 * DAY_MS;

/** The network a click came from, as compared by burst detection: the ASN, else an address prefix. */
export function networkOf(
  asn: number | null | undefined,
  ipAddress: string | null | undefined,
): string | null {
  if (typeof asn === "number" && Number.isInteger(asn) && asn > 0) return `as${asn}`;
  return prefixOf(ipAddress);
}

/** The address prefix of a client: its /24 (IPv4) or /48 (IPv6), or null when unknown. */
export function prefixOf(ipAddress: string | null | undefined): string | null {
  if (!ipAddress) return null;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/.exec(ipAddress);
  if (v4) return `ip4:${v4[1]}.${v4[2]}.${v4[3]}`;
  if (ipAddress.includes(":")) {
    const groups = expandIpv6(ipAddress);
    if (groups) return `ip6:${groups.slice(0, 3).join(":")}`;
  }
  return null;
}

/** The eight 16-bit groups of an IPv6 address (lowercase, no leading zeros), or null. */
function expandIpv6(address: string): string[] | null {
  const halves = address.toLowerCase().split("::");
  if (halves.length > 2) return null;
  const part = (s: string | undefined) => (s ? s.split(":") : []);
  const head = part(halves[0]);
  const tail = part(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array<string>(Math.max(0, missing)).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => g.replace(/^0+(?=.)/, ""));
}

/** One click, as burst detection sees it. */
export interface BurstClick {
  /** Unique within the clicks passed together (the caller's key for the click). */
  key: string;
  /** Epoch milliseconds. */
  at: number;
  network: string | null;
  /** The client's address prefix (prefixOf); the two-link rule needs it equal, and known. */
  prefix?: string | null;
  /** Which link: clicks of one link are one link however often they come. */
  link: string;
  /** Already found to be part of a burst by an earlier batch. */
  dropped?: boolean;
}

/** The identity of a link for burst detection: its target and its name. */
export function linkOf(url: string | null | undefined, linkName: string | null | undefined): string {
  return `${url ?? ""}\u0000${linkName ?? ""}`;
}

/**
 * The keys of every click that is part of a burst, among the clicks of ONE message and recipient.
 * Clicks are split by network, sorted by time and chained into runs (each click at most
 * BURST_GAP_MS after the previous one); a run is a burst when it reaches BURST_MIN_LINKS distinct
 * links, when two consecutive clicks on distinct links are less than HUMAN_MIN_GAP_MS apart, or when
 * it continues a burst an earlier batch dropped. Every click of a burst run is a burst click.
 * Adding clicks never turns a burst back into clicks to keep, so batches may arrive in any order.
 */
export function burstKeys(clicks: readonly BurstClick[]): Set<string> {
  const byNetwork = new Map<string, BurstClick[]>();
  const seen = new Set<string>();
  for (const click of clicks) {
    if (seen.has(click.key)) continue;
    seen.add(click.key);
    const network = click.network ?? "";
    const list = byNetwork.get(network);
    if (list) list.push(click);
    else byNetwork.set(network, [click]);
  }
  const burst = new Set<string>();
  for (const list of byNetwork.values()) {
    list.sort((a, b) => a.at - b.at || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let run: BurstClick[] = [];
    const close = () => {
      if (run.length > 1 && isBurst(run)) for (const c of run) burst.add(c.key);
      run = [];
    };
    for (const click of list) {
      const last = run[run.length - 1];
      if (last && click.at - last.at > BURST_GAP_MS) close();
      run.push(click);
    }
    close();
  }
  return burst;
}

function isBurst(run: readonly BurstClick[]): boolean {
  if (run.some((c) => c.dropped)) return true;
  if (new Set(run.map((c) => c.link)).size >= BURST_MIN_LINKS) return true;
  for (let i = 1; i < run.length; i += 1) {
    const previous = run[i - 1]!;
    const current = run[i]!;
    if (
      current.link !== previous.link &&
      current.at - previous.at < HUMAN_MIN_GAP_MS &&
      previous.prefix != null &&
      previous.prefix === current.prefix
    )
      return true;
  }
  return false;
}

/** Clicks of one message and recipient, from the batch and from storage, for planBursts. */
export interface RecipientClicks<B, S> {
  /** Clicks arriving in this batch. */
  arriving: readonly { click: BurstClick; item: B }[];
  /** Clicks already stored (recorded by an earlier batch). */
  stored: readonly { click: BurstClick; item: S }[];
  /** Clicks an earlier batch dropped as part of a burst. */
  marked: readonly BurstClick[];
}

/** What to do with one recipient's clicks. */
export interface BurstPlan<B, S> {
  /** Arriving clicks to drop (never written). */
  drop: B[];
  /** Stored clicks to delete. */
  remove: S[];
  /** Burst clicks not yet marked: remembered so that a later batch can continue the burst. */
  mark: BurstClick[];
}

/**
 * Decides, for one recipient of one message, which arriving clicks are dropped, which stored clicks
 * are removed and which burst clicks are remembered. A click present both arriving and stored (a
 * redelivery) is one click.
 */
export function planBursts<B, S>(clicks: RecipientClicks<B, S>): BurstPlan<B, S> {
  const marked = clicks.marked.map((c) => ({ ...c, dropped: true }));
  const keys = burstKeys([
    ...marked,
    ...clicks.stored.map((s) => s.click),
    ...clicks.arriving.map((a) => a.click),
  ]);
  const markedKeys = new Set(marked.map((c) => c.key));
  const mark = new Map<string, BurstClick>();
  const note = (c: BurstClick) => {
    if (keys.has(c.key) && !markedKeys.has(c.key)) mark.set(c.key, c);
  };
  const drop = clicks.arriving.filter((a) => keys.has(a.click.key));
  // A stored click well before everything arriving stays, burst or not (see STORED_CLICK_KEPT_AFTER_MS).
  const newest = Math.max(...clicks.arriving.map((a) => a.click.at));
  const remove = clicks.stored.filter(
    (s) => keys.has(s.click.key) && newest - s.click.at < STORED_CLICK_KEPT_AFTER_MS,
  );
  for (const a of drop) note(a.click);
  for (const s of remove) note(s.click);
  return { drop: drop.map((a) => a.item), remove: remove.map((s) => s.item), mark: [...mark.values()] };
}
