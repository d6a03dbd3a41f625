/**
 * Coverage beyond the shared user-agent files: every case of fixtures/machine-traffic.json (network,
 * method, prefetch-header and timing signatures, each with its source) gets its label, and the
 * prefetch headers are read from real requests by the real routes.
 */
import { describe, expect, it } from "vitest";
import {
  classifyInteraction,
  type InteractionInput,
  classificationLabel as labelOf,
} from "../../src/tracking/classify";
import { freshAccount } from "../helpers";
import fixtures from "./fixtures/machine-traffic.json";
import { serve, tokenFor, trackingRequest } from "./support";

interface Case {
  name: string;
  expect: string;
  source: string;
  input: InteractionInput;
}

const cases = fixtures.cases as Case[];
const misses = fixtures.known_misses as Case[];

describe("machine-traffic fixtures", () => {
  it("every case names its source and a known label", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    for (const c of [...cases, ...misses]) {
      expect(c.source.length, c.name).toBeGreaterThan(10);
      expect(c.expect, c.name).toMatch(/^(person|scanner|proxy:[a-z]+)$/);
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(labelOf(classifyInteraction(c.input))).toBe(c.expect);
  });

  it.each(misses.map((c) => [c.name, c] as const))(
    "known miss, recorded as a person because nothing tells it apart: %s",
    (_name, c) => {
      expect(c.expect).toBe("scanner");
      expect(labelOf(classifyInteraction(c.input))).toBe("person");
    },
  );

  it("names the prefetch in the drop reason", () => {
    const prefetch = cases.find((c) => c.input.purpose === "prefetch" && c.input.kind === "click")!;
    expect(classifyInteraction(prefetch.input)).toEqual({ action: "drop", reason: "prefetch: prefetch" });
    // Only a prefetch purpose drops: an unknown value is an ordinary request.
    expect(labelOf(classifyInteraction({ ...prefetch.input, purpose: "navigate" }))).toBe("person");
    expect(labelOf(classifyInteraction({ ...prefetch.input, purpose: "" }))).toBe("person");
  });
});

describe("prefetch headers on the real routes", () => {
  const HOME = { asn: 7922, asOrganization: "Comcast Cable Communications, LLC" };

  it.each([
    ["sec-purpose", "prefetch"],
    ["sec-purpose", "prefetch;anonymous-client-ip"],
    ["purpose", "prefetch"],
    ["x-moz", "prefetch"],
    ["x-purpose", "preview"],
  ])("%s: %s still redirects and answers the GIF, and records nothing", async (header, value) => {
    const account = freshAccount();
    const clickToken = await tokenFor("click", { account_id: account });
    const click = await serve(
      trackingRequest(`/c/${clickToken}`, { cf: HOME, headers: { [header]: value } }),
    );
    expect(click.res.status).toBe(302);
    expect(click.queued).toEqual([]);
    const openToken = await tokenFor("open", { account_id: account });
    const open = await serve(trackingRequest(`/o/${openToken}`, { cf: HOME, headers: { [header]: value } }));
    expect(open.res.status).toBe(200);
    expect(open.res.headers.get("content-type")).toBe("image/gif");
    expect(open.queued).toEqual([]);
  });

  it("the same click without the header is recorded, with its network for burst detection", async () => {
    const account = freshAccount();
    const token = await tokenFor("click", { account_id: account });
    const { queued } = await serve(trackingRequest(`/c/${token}`, { cf: HOME, ip: "73.1.2.3" }));
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ type: "event", network: "as7922" });
    // Opens carry no network: bursts are about clicks.
    const open = await serve(
      trackingRequest(`/o/${await tokenFor("open", { account_id: account })}`, { cf: HOME }),
    );
    expect(open.queued[0]).not.toHaveProperty("network");
  });
});
