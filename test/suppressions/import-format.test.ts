import { parse } from "csv-parse/sync";
import { describe, expect, it } from "vitest";
import {
  csvField,
  mapHeader,
  ndjsonValues,
  parseCsvRecord,
  parseImportRow,
} from "../../src/suppressions/import-format";

describe("parseCsvRecord (RFC 4180)", () => {
  it.each([
    ["a,b,c", ["a", "b", "c"]],
    ['"a,1","b ""q""",c', ["a,1", 'b "q"', "c"]],
    ['"line\nbreak",x', ["line\nbreak", "x"]],
    ["a,,", ["a", "", ""]],
    ["", [""]],
    ['a"b,c', ['a"b', "c"]],
    ['"open,x', null],
  ])("%j", (text, fields) => {
    expect(parseCsvRecord(text)).toEqual(fields);
  });

  it("agrees with csv-parse on generated records, and csvField round-trips", () => {
    const alphabet = ["a", "b", ",", '"', "\n", " ", "é", "@", "1"];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 500; i += 1) {
      const fields = Array.from({ length: 1 + rand(5) }, () =>
        Array.from({ length: rand(6) }, () => alphabet[rand(alphabet.length)]).join(""),
      );
      const line = fields.map(csvField).join(",");
      expect(parseCsvRecord(line)).toEqual(fields);
      if (line !== "") expect(parse(line, { relax_column_count: true })[0]).toEqual(fields);
    }
  });
});

describe("mapHeader: providers' column spellings", () => {
  it.each([
    [["email", "reason", "topic", "expires_at"], { email: 0, reason: 1, topic: 2, expires_at: 3 }],
    [["address", "code", "error", "created_at"], { email: 0, suppressed_at: 3 }], // Mailgun
    [["EmailAddress", "Reason", "LastUpdateTime"], { email: 0, reason: 1, suppressed_at: 2 }], // SES
    [["EmailAddress", "SuppressionReason", "Origin", "CreatedAt"], { email: 0, reason: 1, suppressed_at: 3 }], // Postmark
    [["email", "created", "reason", "status"], { email: 0, suppressed_at: 1, reason: 2 }], // SendGrid
    [["\uFEFFEmail", "Blocked At"], { email: 0, suppressed_at: 1 }], // Brevo, with a BOM
  ])("%j", (header, columns) => {
    expect(mapHeader(header)).toEqual({ columns });
  });

  it("refuses a header without an email column", () => {
    expect(mapHeader(["name", "reason"])).toEqual({ error: expect.stringContaining("no email column") });
  });
});

describe("parseImportRow", () => {
  const now = Date.parse("2026-06-01T00:00:00Z");
  it.each([
    [
      { email: " Ada@Example.COM " },
      { email: "ada@example.com", reason: "manual", topic: "", suppressedAt: now },
    ],
    [{ email: "a@example.com", reason: "BOUNCE" }, { reason: "hard_bounce" }],
    [{ email: "a@example.com", reason: "SpamComplaint" }, { reason: "complaint" }],
    [
      { email: "a@example.com", reason: "soft_bounce", expires_at: "2026-06-02T00:00:00Z" },
      { expiresAt: now + 86_400_000 },
    ],
    [{ email: "a@example.com", suppressed_at: "1700000000" }, { suppressedAt: 1_700_000_000_000 }],
    [
      { email: "a@example.com", suppressed_at: "Tue, 14 Nov 2023 22:13:20 +0000" },
      { suppressedAt: 1_700_000_000_000 },
    ],
    [
      { email: "", email_hash: "a".repeat(64) },
      { email: `#${"a".repeat(64)}`, emailHash: "a".repeat(64) },
    ],
  ])("accepts %j", (values, expected) => {
    const parsed = parseImportRow(values, now);
    expect(parsed).toEqual({ row: expect.objectContaining(expected) });
  });

  it.each([
    [{ email: "" }, "email is missing"],
    [{ email: "nope" }, "email is not a valid address"],
    [{ email: "a@example.com", reason: "angry" }, "reason must be one of"],
    [{ email: "a@example.com", topic: "Not A Topic" }, "topic must be"],
    [{ email: "a@example.com", expires_at: "2026-06-01T00:00:30Z" }, "at least 60 seconds"],
    [{ email: "a@example.com", expires_at: "soon" }, "expires_at must be an ISO 8601"],
    [{ email_hash: "xyz" }, "email_hash must be"],
  ])("rejects %j", (values, message) => {
    expect(parseImportRow(values, now)).toEqual({ error: expect.stringContaining(message) });
  });

  it("reads NDJSON objects with the same spellings", () => {
    expect(ndjsonValues('{"EmailAddress":"a@example.com","Reason":"COMPLAINT"}')).toEqual({
      email: "a@example.com",
      reason: "COMPLAINT",
    });
    expect(ndjsonValues("[1]")).toEqual({ error: "not a JSON object" });
    expect(ndjsonValues("{")).toEqual({ error: "not valid JSON" });
  });
});
