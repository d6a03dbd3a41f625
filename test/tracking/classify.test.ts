import { isbot } from "isbot";
import { describe, expect, it } from "vitest";
import appleMailClient from "../../../shared/fixtures/user-agents/apple-mail-client.txt?raw";
import applePrivacy from "../../../shared/fixtures/user-agents/apple-mail-privacy-protection.txt?raw";
import gmailProxy from "../../../shared/fixtures/user-agents/gmail-image-proxy.txt?raw";
import humanDesktop from "../../../shared/fixtures/user-agents/human-desktop-browsers.txt?raw";
import humanMailClients from "../../../shared/fixtures/user-agents/human-mail-clients.txt?raw";
import humanMobile from "../../../shared/fixtures/user-agents/human-mobile-browsers.txt?raw";
import isbotTsv from "../../../shared/fixtures/user-agents/isbot-classification.tsv?raw";
import linkScanners from "../../../shared/fixtures/user-agents/link-scanners-prefetchers.txt?raw";
import otherProxies from "../../../shared/fixtures/user-agents/other-mail-image-proxies.txt?raw";
import outlook from "../../../shared/fixtures/user-agents/outlook-office365.txt?raw";
import yahooProxy from "../../../shared/fixtures/user-agents/yahoo-mail-proxy.txt?raw";
import { botSchema } from "../../src/events/record";
import {
  type Classification,
  classifyInteraction,
  type InteractionInput,
  SCANNER_CLICK_WINDOW_SECONDS,
} from "../../src/tracking/classify";

const lines = (text: string) => text.split(/\r?\n/).filter((line) => line.trim() !== "");

const FIXTURES = {
  "apple-mail-client": lines(appleMailClient),
  "apple-mail-privacy-protection": lines(applePrivacy),
  "gmail-image-proxy": lines(gmailProxy),
  "human-desktop-browsers": lines(humanDesktop),
  "human-mail-clients": lines(humanMailClients),
  "human-mobile-browsers": lines(humanMobile),
  "link-scanners-prefetchers": lines(linkScanners),
  "other-mail-image-proxies": lines(otherProxies),
  "outlook-office365": lines(outlook),
  "yahoo-mail-proxy": lines(yahooProxy),
} as const;
type Category = keyof typeof FIXTURES;

const PERSON_CATEGORIES: readonly Category[] = [
  "apple-mail-client",
  "human-desktop-browsers",
  "human-mail-clients",
  "human-mobile-browsers",
  "outlook-office365",
];
const MAIL_CLIENT_CATEGORIES: readonly Category[] = [
  "apple-mail-client",
  "human-mail-clients",
  "outlook-office365",
];

const person: Classification = { action: "record", bot: null };
const proxy = (source: string): Classification => ({ action: "record", bot: { kind: "proxy", source } });
const dropped = { action: "drop", reason: expect.any(String) };

const get = (ua: string | null, extra: Partial<InteractionInput> = {}) =>
  classifyInteraction({ kind: "open", method: "GET", userAgent: ua, ...extra });
const click = (ua: string | null, extra: Partial<InteractionInput> = {}) =>
  classifyInteraction({ kind: "click", method: "GET", userAgent: ua, secondsSinceIssued: 3600, ...extra });

/** Networks people browse from, for "timing alone never drops" cases. */
const RESIDENTIAL = [
  { asn: 7922, asOrganization: "Comcast Cable Communications, LLC" },
  { asn: 3320, asOrganization: "Deutsche Telekom AG" },
  { asn: null, asOrganization: null },
  {},
];
const MICROSOFT = { asn: 8075, asOrganization: "Microsoft Corporation" };

describe("fixtures: every line of every user-agent file", () => {
  it("reads every fixture file and line (77 user agents)", () => {
    expect(Object.values(FIXTURES).flat()).toHaveLength(77);
    for (const [category, uas] of Object.entries(FIXTURES)) expect(uas.length, category).toBeGreaterThan(0);
  });

  describe.each(PERSON_CATEGORIES)("%s → a person", (category) => {
    it.each(FIXTURES[category])("%s", (ua) => {
      expect(get(ua)).toEqual(person);
      expect(click(ua)).toEqual(person);
      expect(click(ua, { secondsSinceIssued: 0 })).toEqual(person);
    });
  });

  it.each(FIXTURES["gmail-image-proxy"])("gmail-image-proxy → proxy google: %s", (ua) => {
    expect(get(ua)).toEqual(proxy("google"));
    expect(get(ua, { asn: 15169, asOrganization: "Google LLC" })).toEqual(proxy("google"));
    expect(click(ua)).toEqual(proxy("google"));
  });

  it.each(FIXTURES["yahoo-mail-proxy"])("yahoo-mail-proxy → proxy yahoo: %s", (ua) => {
    expect(get(ua)).toEqual(proxy("yahoo"));
    // The mail proxy may fetch a link for its reader; Yahoo Link Preview on a link is a preview.
    expect(click(ua)).toEqual(ua.includes("Link Preview") ? dropped : proxy("yahoo"));
  });

  it.each(FIXTURES["apple-mail-privacy-protection"])(
    "apple-mail-privacy-protection → proxy apple: %s",
    (ua) => {
      expect(get(ua)).toEqual(proxy("apple"));
      expect(get(ua, { asn: 714, asOrganization: "Apple Inc." })).toEqual(proxy("apple"));
      expect(get(ua, { asn: null, asOrganization: "APPLE-ENGINEERING" })).toEqual(proxy("apple"));
      // No browser sends a bare "Mozilla/5.0": on a link it is a filter, not a person.
      expect(click(ua)).toEqual(dropped);
      expect(click(ua, { asn: 714 })).toEqual(dropped);
    },
  );

  const otherSources = ["seznam", "rambler", "ukrnet", "fastmail", "superhuman", "slack"];
  it.each(FIXTURES["other-mail-image-proxies"].map((ua, i) => [otherSources[i], ua] as const))(
    "other-mail-image-proxies → proxy %s: %s",
    (source, ua) => {
      expect(get(ua)).toEqual(proxy(source!));
    },
  );

  /**
   * Lines 1-2 are ordinary Chrome strings that Microsoft's scanners sent from 40.107.218.12
   * (gophish#973) and 40.94.89.x (gophish#2646), Exchange Online Protection addresses in AS8075,
   * seconds after delivery. Their user agent alone proves nothing; their network and timing do.
   */
  const scannerContext: Partial<InteractionInput>[] = [
    { asn: 8075, asOrganization: "Microsoft Corporation", secondsSinceIssued: 4 },
    { asn: 8075, asOrganization: "MICROSOFT-CORP-MSN-AS-BLOCK", secondsSinceIssued: 20 },
  ];
  it.each(FIXTURES["link-scanners-prefetchers"].map((ua, i) => [i + 1, ua] as const))(
    "link-scanners-prefetchers line %i → dropped: %s",
    (line, ua) => {
      const context = scannerContext[line - 1];
      if (context) {
        expect(click(ua, context)).toEqual(dropped);
        // The same browser string from a person's network is a person.
        expect(click(ua, { ...RESIDENTIAL[0], secondsSinceIssued: context.secondsSinceIssued })).toEqual(
          person,
        );
      } else {
        expect(get(ua)).toEqual(dropped);
        expect(click(ua)).toEqual(dropped);
        expect(click(ua, { secondsSinceIssued: 0, ...RESIDENTIAL[1] })).toEqual(dropped);
      }
    },
  );

  it("names the rule in the drop reason", () => {
    const reasons = FIXTURES["link-scanners-prefetchers"].slice(2).map((ua) => {
      const result = click(ua);
      return result.action === "drop" ? result.reason : "recorded";
    });
    expect(reasons).toEqual([
      "link scanner: trailing-mozilla-token",
      "link scanner: barracuda-sentinel",
      "link scanner: microsoft-office-discovery",
      "link scanner: microsoft-office-discovery",
      "link scanner: exchange-check",
      "link scanner: bing-preview",
      "link scanner: microsoft-preview",
      "link scanner: skype-preview",
      "link scanner: bluecoat",
      "link scanner: slack-link-expanding",
    ]);
  });
});

describe("isbot-classification.tsv cross-check", () => {
  const [header, ...rows] = lines(isbotTsv).map((line) => line.split("\t"));
  const table = rows.map(([category, verdict, , , ua]) => ({
    category: category as Category,
    isbotSaysBot: verdict === "bot",
    ua: ua!,
  }));

  it("covers the same 77 user agents as the fixture files", () => {
    expect(header).toEqual(["category", "isbot_5.2.1", "first_match", "matching_patterns", "user_agent"]);
    expect(table).toHaveLength(77);
    for (const row of table) expect(FIXTURES[row.category]).toContain(row.ua);
  });

  it.each(table.map((row) => [row.category, row.isbotSaysBot ? "bot" : "not-bot", row.ua, row] as const))(
    "installed isbot agrees with the derived table: %s %s %s",
    (_, __, ua, row) => {
      expect(isbot(ua)).toBe(row.isbotSaysBot);
    },
  );

  // Where isbot and the fixtures disagree, the classifier follows the fixtures.
  const overridden = table.filter((row) => row.isbotSaysBot && PERSON_CATEGORIES.includes(row.category));
  it.each(overridden.map((row) => [row.ua] as const))(
    "isbot flags a mail client, recorded as a person: %s",
    (ua) => {
      expect(get(ua)).toEqual(person);
    },
  );
  const PROXY_CATEGORIES: readonly Category[] = [
    "gmail-image-proxy",
    "yahoo-mail-proxy",
    "apple-mail-privacy-protection",
    "other-mail-image-proxies",
  ];
  const proxies = table.filter((row) => row.isbotSaysBot && PROXY_CATEGORIES.includes(row.category));
  it.each(proxies.map((row) => [row.category, row.ua] as const))(
    "isbot flags an image proxy, recorded as a proxy: %s %s",
    (_, ua) => {
      expect(get(ua)).toMatchObject({ action: "record", bot: { kind: "proxy" } });
    },
  );

  it("overrides at least the known cases", () => {
    expect(overridden.map((row) => row.ua)).toEqual(
      expect.arrayContaining([
        "eMClient/9.3.6041.0",
        "Yahoo%20Mail/49268 CFNetwork/1121.2.2 Darwin/19.3.0",
        "WindowsMail/17.5.9600.22013",
      ]),
    );
    expect(proxies).toHaveLength(14); // isbot flags every image proxy in the fixtures
  });
});

describe("method", () => {
  const uas = [
    FIXTURES["human-desktop-browsers"][0],
    FIXTURES["gmail-image-proxy"][0],
    "Mozilla/5.0",
    FIXTURES["outlook-office365"][0],
  ];
  it.each(["HEAD", "head", "POST", "OPTIONS", "PUT", ""])("%s is dropped, whoever asks", (method) => {
    for (const ua of uas) {
      for (const kind of ["open", "click"] as const) {
        expect(classifyInteraction({ kind, method, userAgent: ua! })).toEqual(dropped);
      }
    }
    if (method.toUpperCase() === "HEAD") {
      expect(classifyInteraction({ kind: "click", method, userAgent: uas[0]! })).toEqual({
        action: "drop",
        reason: "method: HEAD",
      });
    }
  });

  it("get in lower case is GET", () => {
    expect(classifyInteraction({ kind: "click", method: "get", userAgent: uas[0]! })).toEqual(person);
  });
});

describe("missing user agent", () => {
  it.each([null, "", "   ", "\t"])("%j is dropped on opens and clicks", (ua) => {
    expect(get(ua)).toEqual({ action: "drop", reason: "missing user agent" });
    expect(click(ua)).toEqual({ action: "drop", reason: "missing user agent" });
    expect(click(ua, { secondsSinceIssued: 999_999 })).toEqual(dropped);
  });
});

describe("timing alone never drops a click", () => {
  const people = PERSON_CATEGORIES.flatMap((category) => FIXTURES[category]);
  it.each([0, 1, 5, 30, SCANNER_CLICK_WINDOW_SECONDS, -10, null, undefined])(
    "%s seconds after issue, from people's networks",
    (secondsSinceIssued) => {
      for (const ua of people) {
        for (const network of RESIDENTIAL) {
          expect(click(ua, { ...network, secondsSinceIssued }), ua).toEqual(person);
        }
      }
    },
  );

  it("proxies are still recorded as proxies however early", () => {
    expect(click(FIXTURES["gmail-image-proxy"][0]!, { secondsSinceIssued: 0 })).toEqual(proxy("google"));
    expect(get(FIXTURES["yahoo-mail-proxy"][0]!, { secondsSinceIssued: 0 })).toEqual(proxy("yahoo"));
  });
});

describe("Microsoft's network", () => {
  const chrome = FIXTURES["human-desktop-browsers"][0]!;

  it.each([
    [{ asn: 8075 }],
    [{ asn: 8074 }],
    [{ asn: 12076 }],
    [{ asn: 8068, asOrganization: "Microsoft Corporation" }],
    [{ asn: null, asOrganization: "MICROSOFT-CORP-MSN-AS-BLOCK" }],
  ])("a browser click soon after issue is a Safe Links detonation: %j", (network) => {
    for (const seconds of [0, 3, 60, SCANNER_CLICK_WINDOW_SECONDS]) {
      expect(click(chrome, { ...network, secondsSinceIssued: seconds })).toEqual({
        action: "drop",
        reason: "microsoft safe links",
      });
    }
  });

  it("a later click, or one of unknown age, is a person (Windows 365, Azure Virtual Desktop)", () => {
    for (const secondsSinceIssued of [SCANNER_CLICK_WINDOW_SECONDS + 1, 3600, 86_400 * 30, null, undefined]) {
      expect(click(chrome, { ...MICROSOFT, secondsSinceIssued })).toEqual(person);
    }
  });

  it("a browser open is Outlook.com's image proxy, whatever the timing", () => {
    for (const ua of [...FIXTURES["human-desktop-browsers"], ...FIXTURES["human-mobile-browsers"]]) {
      expect(get(ua, MICROSOFT)).toEqual(proxy("microsoft"));
      expect(get(ua, { ...MICROSOFT, secondsSinceIssued: 2 })).toEqual(proxy("microsoft"));
    }
  });

  it("a mail client on Microsoft's network is a person (a Cloud PC running Outlook)", () => {
    for (const category of MAIL_CLIENT_CATEGORIES) {
      for (const ua of FIXTURES[category]) {
        expect(get(ua, MICROSOFT), ua).toEqual(person);
        expect(click(ua, { ...MICROSOFT, secondsSinceIssued: 1 }), ua).toEqual(person);
      }
    }
  });

  it("a crawler on Microsoft's network is still a crawler", () => {
    expect(get("python-requests/2.31.0", MICROSOFT)).toEqual(dropped);
    expect(get(FIXTURES["link-scanners-prefetchers"][8]!, MICROSOFT)).toEqual(dropped);
  });
});

describe("security gateways' networks", () => {
  const networks = [
    { asn: 26211, asOrganization: "Proofpoint, Inc.", name: "proofpoint" },
    { asn: 22843, asOrganization: null, name: "proofpoint" },
    { asn: 30031, asOrganization: "Mimecast Ltd", name: "mimecast" },
    { asn: 15324, asOrganization: "Barracuda Networks, Inc.", name: "barracuda" },
    { asn: 16417, asOrganization: "Cisco Systems Ironport Division", name: "cisco-ironport" },
    // A regional ASN not in the list, recognised by its organisation.
    { asn: 64512, asOrganization: "Mimecast South Africa", name: "mimecast" },
    { asn: null, asOrganization: "PROOFPOINT-ASN-US-EAST", name: "proofpoint" },
    { asn: 65000, asOrganization: "Barracuda Networks", name: "barracuda" },
  ];
  const uas = [
    FIXTURES["human-desktop-browsers"][0]!,
    FIXTURES["gmail-image-proxy"][0]!,
    "Mozilla/5.0",
    FIXTURES["outlook-office365"][0]!,
    null,
  ];

  it.each(networks)(
    "$name ($asn, $asOrganization): every open and click is dropped",
    ({ name, ...network }) => {
      for (const ua of uas) {
        for (const secondsSinceIssued of [0, 86_400, null]) {
          expect(get(ua, network)).toEqual({ action: "drop", reason: `security gateway: ${name}` });
          expect(click(ua, { ...network, secondsSinceIssued })).toEqual({
            action: "drop",
            reason: `security gateway: ${name}`,
          });
        }
      }
    },
  );

  it.each([
    [{ asn: 109, asOrganization: "Cisco Systems, Inc." }],
    [{ asn: 22616, asOrganization: "ZSCALER, INC." }],
    [{ asn: 15169, asOrganization: "Google LLC" }],
    [{ asn: 16509, asOrganization: "Amazon.com, Inc." }],
  ])("networks people also browse from are not dropped on their own: %j", (network) => {
    const chrome = FIXTURES["human-desktop-browsers"][0]!;
    expect(click(chrome, { ...network, secondsSinceIssued: 1 })).toEqual(person);
    expect(get(chrome, network)).toEqual(person);
  });
});

describe("generic crawlers (isbot)", () => {
  it.each([
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  ])("%s is dropped", (ua) => {
    const result = click(ua);
    expect(result).toEqual(dropped);
    expect(result.action === "drop" && result.reason.startsWith("crawler: ")).toBe(true);
    expect(get(ua)).toEqual(dropped);
  });

  it("a HEY image proxy is a proxy, though isbot flags it", () => {
    const ua =
      "hey.com/imageproxy Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36";
    expect(isbot(ua)).toBe(true);
    expect(get(ua)).toEqual(proxy("hey"));
  });
});

describe("result shape", () => {
  it("every record's bot matches the event schema, and every drop has a reason", () => {
    const all = Object.values(FIXTURES).flat();
    for (const ua of [...all, null, "curl/8"]) {
      for (const kind of ["open", "click"] as const) {
        for (const network of [{}, MICROSOFT, { asn: 26211 }]) {
          const result = classifyInteraction({
            kind,
            method: "GET",
            userAgent: ua,
            secondsSinceIssued: 1,
            ...network,
          });
          if (result.action === "record") {
            if (result.bot !== null) expect(botSchema.parse(result.bot)).toEqual(result.bot);
          } else {
            expect(result.reason.length).toBeGreaterThan(0);
          }
        }
      }
    }
  });
});
