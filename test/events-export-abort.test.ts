import { env } from "cloudflare:workers";
import { parse } from "csv-parse/sync";
import { describe, expect, it } from "vitest";
import { call, consume, event, eventMessage, freshAccount, mintToken } from "./helpers";

/**
 * SPEC §9: a stream that cannot finish (D1 failed midway) is aborted, never ended as if complete.
 * The export's second page fails (a stored row that cannot be read stands in for D1 failing), and
 * the client reading the body through the Worker's fetch entrypoint must see an error, not an end.
 */
describe("an export that fails midway", () => {
  it.each(["ndjson", "csv"])("errors the %s body instead of ending it", async (format) => {
    const account = freshAccount();
    const now = Date.now();
    const records = Array.from({ length: 1500 }, (_, i) =>
      event({ account_id: account, occurred_at: now - 60_000 - i * 1000 }),
    );
    for (let i = 0; i < records.length; i += 100)
      await consume(records.slice(i, i + 100).map((e) => eventMessage(e)));
    // The 1,200th newest event (on the export's second page) can no longer be read.
    await env.DB.prepare("UPDATE events SET tags = '[not json' WHERE account_id = ? AND id = ?")
      .bind(account, records[1200]?.id)
      .run();
    const token = await mintToken(account, "events:read");
    const res = await call("GET", `/v1/events/export?format=${format}&days=1`, { token });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = "";
    const decoder = new TextDecoder();
    const outcome = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return "ended";
        text += decoder.decode(value, { stream: true });
      }
    })().catch((err: unknown) => `errored: ${String(err)}`);
    expect(outcome).toMatch(/^errored/);
    // Where the transport ends an errored body cleanly (workerd locally), the content still fails
    // to parse: its last line is neither JSON nor a CSV record of the file's width.
    const lines = text.trimEnd().split(/\r?\n/);
    expect(lines.length).toBeGreaterThan(1000);
    const last = lines.at(-1) ?? "";
    expect(last).toMatch(/^!export aborted/);
    expect(() => JSON.parse(last)).toThrow();
    if (format === "csv") {
      expect(() => parse(text, { columns: true })).toThrow();
    } else {
      expect(() =>
        text
          .trimEnd()
          .split("\n")
          .map((l) => JSON.parse(l)),
      ).toThrow();
    }
  });
});
