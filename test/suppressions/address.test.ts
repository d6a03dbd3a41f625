import { describe, expect, it } from "vitest";
import { normalizeEmail } from "../../src/suppressions/address";

describe("normalizeEmail", () => {
  it.each([
    ["user@example.com", "user@example.com"],
    ["  User.Name+Tag@Example.COM ", "user.name+tag@example.com"],
    ["o'brien@sub.example.co.uk", "o'brien@sub.example.co.uk"],
    ["x@xn--bcher-kva.example", "x@xn--bcher-kva.example"],
    ["josé@exämple.de", "josé@xn--exmple-cua.de"],
    ["a_b-c{d}@ex-ample.io", "a_b-c{d}@ex-ample.io"],
    [`${"l".repeat(64)}@example.com`, `${"l".repeat(64)}@example.com`],
  ])("accepts %s as %s", (input, expected) => {
    expect(normalizeEmail(input)).toBe(expected);
  });

  it.each([
    "",
    "plain",
    "@example.com",
    "user@",
    "user@localhost",
    "user@@example.com",
    "a@b@example.com",
    "us er@example.com",
    ".user@example.com",
    "user.@example.com",
    "us..er@example.com",
    '"quoted"@example.com',
    "user@[127.0.0.1]",
    "user@127.0.0.1",
    "user@-example.com",
    "user@example-.com",
    "user@exa_mple.com",
    "colon:user@example.com",
    "user@example..com",
    "tab\tuser@example.com",
    `${"l".repeat(65)}@example.com`,
    `u@${Array.from({ length: 5 }, () => "d".repeat(60)).join(".")}.com`,
  ])("refuses %j", (input) => {
    expect(normalizeEmail(input)).toBeNull();
  });
});
