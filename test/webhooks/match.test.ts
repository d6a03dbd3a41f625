import { describe, expect, it } from "vitest";
import { type MatchableEvent, matches, subscriptionOf } from "../../src/webhooks/match";
import { nextAttempt } from "../../src/webhooks/schedule";
import { checkWebhookUrl } from "../../src/webhooks/url-safety";

const base: MatchableEvent = {
  type: "email.delivered",
  topic: "news",
  campaign: "spring",
  from_domain: "mail.example.com",
  tags: '["vip","q2"]',
};
const sub = (eventTypes: string[] | null, filters: Record<string, unknown> = {}) =>
  subscriptionOf({ eventTypes: eventTypes && JSON.stringify(eventTypes), filters: JSON.stringify(filters) });

describe("matches", () => {
  it.each([
    ["every type, no filters", sub(null), base, true],
    ["a subscribed type", sub(["email.delivered", "email.bounced"]), base, true],
    ["an unsubscribed type", sub(["email.bounced"]), base, false],
    ["topic equal", sub(null, { topic: "news" }), base, true],
    ["topic different", sub(null, { topic: "promo" }), base, false],
    ["topic filter on an event without one", sub(null, { topic: "news" }), { ...base, topic: null }, false],
    ["campaign exact", sub(null, { campaign: "spring" }), base, true],
    ["campaign is case-sensitive", sub(null, { campaign: "Spring" }), base, false],
    ["domain equal", sub(null, { domain: "mail.example.com" }), base, true],
    ["domain different", sub(null, { domain: "example.com" }), base, false],
    ["tags: any of", sub(null, { tags: ["x", "q2"] }), base, true],
    ["tags: none of", sub(null, { tags: ["x", "y"] }), base, false],
    ["tags given as an array", sub(null, { tags: ["vip"] }), { ...base, tags: ["vip"] }, true],
    ["every filter must match", sub(null, { topic: "news", campaign: "autumn" }), base, false],
    ["type and filters together", sub(["email.delivered"], { topic: "news", tags: ["vip"] }), base, true],
  ])("%s", (_name, s, e, expected) => {
    expect(matches(s, e)).toBe(expected);
  });
});

describe("checkWebhookUrl", () => {
  it.each([
    ["https://hooks.example.org/x", true],
    ["https://hooks.example.org:443/x?y=1", true],
    ["https://hooks.example.org:8443/x", false],
    ["https://hooks.example.org:22/x", false],
    ["https://hooks.example.org:6379/x", false],
    ["https://127.0.0.1.nip.io/x", false],
    ["https://app.10.0.0.1.nip.io/x", false],
    ["https://magic-127-0-0-1.nip.io/x", false],
    ["https://7f000001.nip.io/x", false],
    ["https://169-254-169-254.sslip.io/x", false],
    ["https://192.168.0.1.xip.io/x", false],
    ["https://nip.io/x", false],
    ["https://8.8.8.8.nip.io/x", true],
    ["https://localtest.me/x", false],
    ["https://api.lvh.me/x", false],
    ["https://7f000001.c0a80001.rbndr.us/x", false],
    ["https://10.1.2.3.hooks.example.org/x", false],
    ["https://hooks-2026.example.org/x", true],
    ["https://8.8.8.8/x", true],
    ["https://[2606:4700::1111]/x", true],
    ["http://hooks.example.org/x", false],
    ["https://localhost/x", false],
    ["https://api.localhost/x", false],
    ["https://intranet/x", false],
    ["https://printer.local/x", false],
    ["https://127.0.0.1/x", false],
    ["https://127.1/x", false],
    ["https://2130706433/x", false],
    ["https://0x7f000001/x", false],
    ["https://0177.0.0.1/x", false],
    ["https://0.0.0.0/x", false],
    ["https://10.0.0.1/x", false],
    ["https://172.16.0.1/x", false],
    ["https://172.31.255.255/x", false],
    ["https://172.32.0.1/x", true],
    ["https://192.168.1.1/x", false],
    ["https://100.64.0.1/x", false],
    ["https://100.128.0.1/x", true],
    ["https://169.254.169.254/x", false],
    ["https://224.0.0.1/x", false],
    ["https://[::1]/x", false],
    ["https://[::]/x", false],
    ["https://[::ffff:10.0.0.1]/x", false],
    ["https://[::ffff:8.8.8.8]/x", false],
    ["https://[64:ff9b::a00:1]/x", false],
    ["https://[fc00::1]/x", false],
    ["https://[fd12:3456::1]/x", false],
    ["https://[fe80::1]/x", false],
    ["https://[ff02::1]/x", false],
    ["https://[2001:db8::1]/x", false],
    ["https://user@hooks.example.org/x", false],
    ["https://:pw@hooks.example.org/x", false],
    ["https://hooks.example.org/x#frag", false],
    ["ftp://hooks.example.org/x", false],
    ["javascript:alert(1)", false],
    ["hooks.example.org/x", false],
  ])("%s → %s", (url, ok) => {
    expect(checkWebhookUrl(url, false).ok).toBe(ok);
  });

  it("with insecure URLs allowed: http and private hosts pass, credentials never do", () => {
    expect(checkWebhookUrl("http://127.0.0.1:8080/x", true).ok).toBe(true);
    expect(checkWebhookUrl("https://hooks.example.org:8443/x", true).ok).toBe(true);
    expect(checkWebhookUrl("http://127.0.0.1.nip.io:8080/x", true).ok).toBe(true);
    expect(checkWebhookUrl("http://10.0.0.5/x", true).ok).toBe(true);
    expect(checkWebhookUrl("http://u:p@127.0.0.1/x", true).ok).toBe(false);
    expect(checkWebhookUrl("ftp://127.0.0.1/x", true).ok).toBe(false);
  });
});

describe("nextAttempt", () => {
  const t0 = Date.UTC(2026, 0, 1);
  it("follows 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then 12 h, ending exactly at 72 h", () => {
    expect(nextAttempt(t0, 1, t0)).toEqual({ at: t0 + 5000, delaySeconds: 5 });
    expect(nextAttempt(t0, 2, t0 + 5000)?.delaySeconds).toBe(300);
    expect(nextAttempt(t0, 7, t0)?.delaySeconds).toBe(43_200);
    expect(nextAttempt(t0, 20, t0 + 70 * 3600_000)).toEqual({ at: t0 + 72 * 3600_000, delaySeconds: 7200 });
    expect(nextAttempt(t0, 21, t0 + 72 * 3600_000)).toBeNull();
  });
});
