import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  consumerProviderSql,
  providerOfDomain,
  providerOfServer,
  SERVER_SIGNATURES,
} from "../../src/mailbox/providers";
import { parseSesMessage } from "../../src/ses/parse";
import { consume } from "../helpers";
import googleBounce from "./ses-bounce-google-workspace.json?raw";
import microsoftDelivery from "./ses-delivery-microsoft365.json?raw";

describe("providerOfDomain (consumer domains)", () => {
  const cases: [string, string | null][] = [
    ["gmail.com", "google"],
    ["googlemail.com", "google"],
    ["GMAIL.COM", "google"],
    ["outlook.com", "microsoft"],
    ["hotmail.com", "microsoft"],
    ["hotmail.co.uk", "microsoft"],
    ["hotmail.fr", "microsoft"],
    ["live.com", "microsoft"],
    ["msn.com", "microsoft"],
    ["yahoo.com", "yahoo"],
    ["yahoo.co.uk", "yahoo"],
    ["yahoo.com.br", "yahoo"],
    ["ymail.com", "yahoo"],
    ["aol.com", "yahoo"],
    ["icloud.com", "apple"],
    ["me.com", "apple"],
    ["mac.com", "apple"],
    // Not Yahoo Inc.'s, and not a consumer domain at all.
    ["yahoo.co.jp", null],
    ["company.com", null],
    ["mail.gmail.com.evil.test", null],
    ["gmail.company.com", null],
    ["hotmail.example.org", null],
    ["notgmail.com", null],
  ];
  it.each(cases)("%s → %s", (domain, provider) => {
    expect(providerOfDomain(domain)).toBe(provider);
  });

  it("the SQL expression agrees with the TypeScript table", async () => {
    for (const [domain, provider] of cases) {
      const row = await env.DB.prepare(`SELECT ${consumerProviderSql("d")} AS p FROM (SELECT ? AS d)`)
        .bind(domain.toLowerCase())
        .first<{ p: string | null }>();
      expect(row?.p ?? null, domain).toBe(provider);
    }
  });
});

describe("providerOfServer (what SES reports of the receiving server)", () => {
  const cases: [string, Parameters<typeof providerOfServer>[0], string | null][] = [
    [
      "Google delivery reply",
      { smtpResponse: "250 2.0.0 OK  1700000000 d9443c01a7336-1e4c4d7b3e5si1234567plh.123 - gsmtp" },
      "google",
    ],
    [
      "Google bounce with its support link",
      {
        smtpResponse:
          "550-5.1.1 The email account that you tried to reach does not exist. https://support.google.com/mail/?p=NoSuchUser",
      },
      "google",
    ],
    ["Google MX address only", { smtpResponse: "250 ok", remoteMtaIp: "142.251.16.27" }, "google"],
    [
      "Exchange Online delivery",
      {
        smtpResponse:
          "250 2.6.0 <a@b> [InternalId=1, Hostname=AM6PR04MB1234.eurprd04.prod.outlook.com] 100 bytes in 0.1, 1 KB/sec Queued mail for delivery",
      },
      "microsoft",
    ],
    [
      "Exchange Online bounce",
      {
        smtpResponse:
          "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [BN1NAM02FT014.eop-nam02.prod.protection.outlook.com]",
      },
      "microsoft",
    ],
    ["EOP address only", { smtpResponse: "250 OK", remoteMtaIp: "40.107.22.53" }, "microsoft"],
    [
      "Yahoo deferral",
      {
        smtpResponse:
          "421 4.7.0 [TSS04] Messages from 1.2.3.4 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
      },
      "yahoo",
    ],
    ["Yahoo MX name", { reportingMTA: "dns; mta7.am0.yahoodns.net" }, "yahoo"],
    [
      "iCloud rejection",
      {
        smtpResponse:
          "550 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
      },
      "apple",
    ],
    // SES's own reporting MTA and an ordinary server name no provider.
    [
      "SES reporting MTA",
      { smtpResponse: "250 2.6.0 Message received", reportingMTA: "dsn; a8-70.smtp-out.amazonses.com" },
      null,
    ],
    ["Postfix", { smtpResponse: "250 2.0.0 Ok: queued as 4ZK1c2", remoteMtaIp: "3.231.136.178" }, null],
    ["nothing", {}, null],
    ["malformed address", { remoteMtaIp: "999.1.1.1" }, null],
  ];
  it.each(cases)("%s", (_name, report, provider) => {
    expect(providerOfServer(report)).toBe(provider);
  });

  it("every signature names its source", () => {
    for (const s of SERVER_SIGNATURES) expect(s.source.length).toBeGreaterThan(20);
  });
});

describe("learned per recipient domain from real SES samples", () => {
  it("a company domain at Microsoft 365, from a real delivery's smtpResponse", async () => {
    const parsed = await parseSesMessage(microsoftDelivery, { snsMessageId: "sns-ms-1" });
    expect(parsed.kind).toBe("events");
    if (parsed.kind !== "events") return;
    expect(parsed.items[0]?.event.recipient).toBe("brjohnson@seven.com.au");
    expect(parsed.items[0]?.mailbox_provider).toBe("microsoft");
  });

  it("a company domain at Google Workspace, from a real bounce's diagnosticCode", async () => {
    const parsed = await parseSesMessage(googleBounce, { snsMessageId: "sns-g-1" });
    if (parsed.kind !== "events") throw new Error("not parsed");
    expect(parsed.items[0]?.event.recipient).toBe("user@company.com");
    expect(parsed.items[0]?.mailbox_provider).toBe("google");
  });

  it("the consumer remembers the domain's provider, and writes nothing when it is unchanged", async () => {
    const domain = `learn-${crypto.randomUUID().slice(0, 8)}.test`;
    const sample = JSON.parse(microsoftDelivery);
    sample.mail.destination = [`a@${domain}`];
    sample.delivery.recipients = [`a@${domain}`];
    const parsed = await parseSesMessage(JSON.stringify(sample), { snsMessageId: "sns-ms-2" });
    if (parsed.kind !== "events") throw new Error("not parsed");
    await consume(
      parsed.items.map((i) => ({
        type: "event",
        event: { ...i.event, account_id: "acct_learn" },
        mailbox_provider: i.mailbox_provider,
      })),
    );
    const row = await env.DB.prepare("SELECT provider FROM mailbox_domains WHERE domain = ?")
      .bind(domain)
      .first<{ provider: string }>();
    expect(row?.provider).toBe("microsoft");
    const again = await env.DB.prepare(
      `INSERT INTO mailbox_domains (domain, provider, learned_at) VALUES (?1, 'microsoft', 1)
       ON CONFLICT (domain) DO UPDATE SET provider = excluded.provider WHERE mailbox_domains.provider <> excluded.provider`,
    )
      .bind(domain)
      .run();
    expect(again.meta.rows_written).toBe(0);
  });
});
