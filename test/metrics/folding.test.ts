import { describe, expect, it } from "vitest";
import { FOLD_CAP, FOLDED_VALUE } from "../../src/db/metrics";
import { call, consume, event, eventMessage, eventsDb, freshAccount, json, mintToken } from "../helpers";

/**
 * SPEC §15 folding: past FOLD_CAP values of a dimension per account and UTC day, the rollups count
 * further values as "(other)", and an answer by or filtered on that dimension says `folded: true`.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const pad = (i: number) => String(i).padStart(3, "0");

type Metrics = {
  folded: boolean;
  data: { group: string | null; delivered: number }[];
  totals: { delivered: number };
};

function deliveries(account: string, at: number, items: { campaign?: string; tags?: string[] }[], from = 0) {
  return items.map((item, i) =>
    eventMessage(
      event({
        account_id: account,
        type: "email.delivered",
        recipient: `r${from + i}@x.test`,
        occurred_at: at,
        ...item,
      }),
    ),
  );
}

async function deliver(
  account: string,
  at: number,
  items: { campaign?: string; tags?: string[] }[],
  from = 0,
) {
  await consume(deliveries(account, at, items, from));
}

async function metrics(token: string, query: string): Promise<Metrics> {
  const res = await call("GET", `/v1/metrics?${query}`, { token });
  expect(res.status).toBe(200);
  return (await json(res)) as Metrics;
}

const groups = (m: Metrics) => new Map(m.data.map((d) => [d.group, d.delivered]));

describe("folding rare values (SPEC §15)", () => {
  it(`keeps ${FOLD_CAP} campaigns an account day, counts the rest as "${FOLDED_VALUE}" and says so`, async () => {
    const account = freshAccount();
    const today = Math.floor(Date.now() / DAY) * DAY;
    const at = today - DAY + 10 * HOUR; // yesterday, 10:00 UTC
    const extra = 30;
    await deliver(
      account,
      at,
      Array.from({ length: FOLD_CAP + extra }, (_, i) => ({ campaign: `c${pad(i)}` })),
    );
    const token = await mintToken(account, "events:read");

    // By campaign over whole UTC days (daily rollups) and in a half-hour zone (quarter hours): the
    // first FOLD_CAP by name keep their name, the others are one group; nothing is lost.
    for (const query of [
      "days=3&group_by=campaign",
      "days=3&group_by=campaign&tz=Asia/Kolkata&interval=week",
    ]) {
      const m = await metrics(token, query);
      expect(m.folded, query).toBe(true);
      const by = groups(m);
      expect(by.get(FOLDED_VALUE), query).toBe(extra);
      expect(by.get("c000"), query).toBe(1);
      expect(by.get(`c${pad(FOLD_CAP - 1)}`), query).toBe(1);
      expect(by.has(`c${pad(FOLD_CAP)}`), query).toBe(false);
      expect(m.totals.delivered, query).toBe(FOLD_CAP + extra);
    }
    // Ungrouped and unfiltered: folding changes nothing, and the answer does not say it did.
    const plain = await metrics(token, "days=3");
    expect(plain.folded).toBe(false);
    expect(plain.totals.delivered).toBe(FOLD_CAP + extra);
    // A filter on a folded value matches nothing of it, and says why.
    const folded = await metrics(token, `days=3&campaign=c${pad(FOLD_CAP + 5)}`);
    expect(folded.totals.delivered).toBe(0);
    expect(folded.folded).toBe(true);

    // A later batch: a kept campaign adds to its own row, a new one folds; a redelivery adds nothing.
    const later = deliveries(account, at + HOUR, [{ campaign: "c007" }, { campaign: "zz-new" }], 1000);
    await consume(later);
    await consume(later);
    const after = groups(await metrics(token, "days=3&group_by=campaign"));
    expect(after.get("c007")).toBe(2);
    expect(after.has("zz-new")).toBe(false);
    expect(after.get(FOLDED_VALUE)).toBe(extra + 1);

    // The day's rows are bounded: FOLD_CAP campaigns and "(other)".
    const rows = await eventsDb(account)
      .prepare("SELECT COUNT(*) AS n FROM metric_rollups_day WHERE account_id = ? AND bucket = ?")
      .bind(account, today - DAY)
      .first<{ n: number }>();
    expect(rows?.n).toBe(FOLD_CAP + 1);

    // Another day starts afresh, and a window that holds no folded day says folded: false.
    await deliver(account, today + 60_000, [{ campaign: "zz-new" }], 2000);
    const start = new Date(today).toISOString();
    const fresh = await metrics(token, `start=${start}&group_by=campaign`);
    expect(fresh.folded).toBe(false);
    expect(groups(fresh).get("zz-new")).toBe(1);
  });

  it("folds tag sets the same way, and group_by=tag shows the folded group", async () => {
    const account = freshAccount();
    const at = Math.floor(Date.now() / DAY) * DAY - DAY + 9 * HOUR;
    const extra = 5;
    await deliver(
      account,
      at,
      Array.from({ length: FOLD_CAP + extra }, (_, i) => ({ tags: [`t${pad(i)}`] })),
    );
    const token = await mintToken(account, "events:read");
    const m = await metrics(token, "days=3&group_by=tag");
    expect(m.folded).toBe(true);
    expect(groups(m).get(FOLDED_VALUE)).toBe(extra);
    expect(m.totals.delivered).toBe(FOLD_CAP + extra);
  });
});
