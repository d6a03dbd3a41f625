import { describe, expect, it } from "vitest";
import { parseTrackingKeys } from "../../src/config";
import {
  importTrackingKeys,
  MAX_TOKEN_LENGTH,
  openToken,
  sealToken,
  type TokenKind,
  type TokenPayload,
} from "../../src/tracking/token";

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const KINDS: readonly TokenKind[] = ["open", "click", "unsubscribe"];

/** Deterministic PRNG (mulberry32) so that every failure names a reproducible seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number) => Math.floor(next() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chars = (alphabet: string, min: number, max: number) => {
    const length = min + int(max - min + 1);
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[int(alphabet.length)];
    return out;
  };
  return { next, int, pick, chars };
}
type Prng = ReturnType<typeof prng>;

const keyBytes = (first: number) => Uint8Array.from({ length: 32 }, (_, i) => (first + i) & 0xff);
const toBase64Url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const fromBase64Url = (text: string) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

const KEY_A = keyBytes(0);
const KEY_B = keyBytes(32);
const ringA = await importTrackingKeys([KEY_A]);
const ringB = await importTrackingKeys([KEY_B]);

const uuid = (rng: Prng) => {
  const hex = rng.chars("0123456789abcdef", 32, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

/** The SPEC §5 reference case: 16-character account, `email_<uuid>`, 30-character recipient, no topic. */
function referencePayload(kind: TokenKind, url?: string): TokenPayload {
  return {
    kind,
    account_id: "acct_0123456789a",
    email_id: "email_019e1972-e87e-7000-bf74-ba09e0ed0d62",
    recipient: "firstname.lastname@example.com",
    topic: null,
    issued_at: 1_775_730_609,
    ...(kind === "click" ? { url: url ?? "https://example.com/", link_name: null } : {}),
  };
}

const UNICODE = ["é", "ß", "ø", "日本", "𝒳", "😀", "Ω", "\u00a0", "ü", "👩‍💻"];
const LOCAL = "abcdefghijklmnopqrstuvwxyz0123456789._+-";
const TOPIC = "abcdefghijklmnopqrstuvwxyz0123456789_.-";

/** A random, valid payload of any kind, with every optional part on or off. */
function randomPayload(rng: Prng): TokenPayload {
  const kind = rng.pick(KINDS);
  const unicode = rng.next() < 0.3;
  const recipient = `${rng.chars(LOCAL, 1, 30)}${unicode ? rng.pick(UNICODE) : ""}@${rng.chars("abcdefghij", 1, 12)}.${rng.pick(["com", "de", "io", "co.uk"])}`;
  const payload: TokenPayload = {
    kind,
    account_id:
      rng.next() < 0.2 ? `acct_${rng.pick(UNICODE)}${rng.chars(LOCAL, 0, 20)}` : rng.chars(LOCAL, 1, 40),
    email_id: rng.next() < 0.7 ? `email_${uuid(rng)}` : `msg_${rng.chars(LOCAL, 1, 50)}`,
    recipient,
    topic: rng.next() < 0.5 ? rng.chars(TOPIC, 1, 64) : null,
    issued_at: rng.int(0x1_0000_0000),
  };
  if (kind === "click") {
    const path = rng.chars(`${LOCAL}/?=&%`, 0, 300);
    payload.url = `${rng.pick(["https://", "http://"])}${rng.chars("abcdefghij", 1, 20)}.example/${path}${unicode ? rng.pick(UNICODE) : ""}`;
    payload.link_name =
      rng.next() < 0.5 ? `${rng.chars(LOCAL, 0, 40)}${unicode ? rng.pick(UNICODE) : ""}` : null;
  }
  return payload;
}

/** What openToken gives back: clicks always carry `link_name` (null when absent). */
const expected = (payload: TokenPayload): TokenPayload =>
  payload.kind === "click" ? { ...payload, link_name: payload.link_name ?? null } : payload;

/** Seals arbitrary plaintext the way sealToken does, to reach the payload parser with authentic bytes. */
async function sealRaw(rawKey: Uint8Array, plaintext: Uint8Array, version = 1): Promise<string> {
  const bytes = new Uint8Array(rawKey);
  const id = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))[0]! & 0x1f;
  const key = await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt"]);
  const header = new Uint8Array([(version << 5) | id]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: header },
      key,
      new Uint8Array(plaintext),
    ),
  );
  return toBase64Url(new Uint8Array([...header, ...iv, ...sealed]));
}

describe("parseTrackingKeys", () => {
  const a = toBase64Url(KEY_A);
  const b = toBase64Url(KEY_B);

  it("parses comma-separated base64url keys in order", () => {
    expect(parseTrackingKeys(`${a},${b}`)).toEqual([KEY_A, KEY_B]);
  });

  it("accepts the test configuration's keys", () => {
    const keys = parseTrackingKeys(
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8,ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
    );
    expect(keys).toEqual([KEY_A, KEY_B]);
  });

  it("tolerates blanks around commas, a trailing comma and padding", () => {
    expect(parseTrackingKeys(` ${a} ,\n${b}=, `)).toEqual([KEY_A, KEY_B]);
  });

  const secret = toBase64Url(Uint8Array.from({ length: 31 }, (_, i) => 200 - i));
  it.each([
    ["an empty value", ""],
    ["only commas and blanks", " , ,"],
    ["a 31-byte key", secret],
    ["a 33-byte key", toBase64Url(new Uint8Array(33))],
    ["a 16-byte key", toBase64Url(new Uint8Array(16))],
    ["standard base64 characters", `${a.slice(0, 41)}+/`],
    ["a non-canonical last character", `${a.slice(0, 42)}9`],
    ["a second key that is wrong", `${a},${secret}`],
    ["a key with inner blanks", `${a.slice(0, 20)} ${a.slice(20)}`],
  ])("rejects %s, naming TRACKING_KEYS but never the value", (_, value) => {
    let error: unknown;
    try {
      parseTrackingKeys(value);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain("TRACKING_KEYS");
    for (const part of value.split(",")) {
      if (part.trim().length > 8) expect(message).not.toContain(part.trim());
    }
  });

  it("importTrackingKeys refuses an empty list or a short key", async () => {
    await expect(importTrackingKeys([])).rejects.toThrow(/TRACKING_KEYS/);
    await expect(importTrackingKeys([new Uint8Array(31)])).rejects.toThrow(/TRACKING_KEYS/);
  });
});

describe("sealToken / openToken round trip", () => {
  const variants: [string, Partial<TokenPayload>][] = [
    ["plain", {}],
    ["with a topic", { topic: "product-updates.weekly_1" }],
    ["with unicode", { recipient: "jürgen.müller+日本@bücher.example", account_id: "konto-ß-😀" }],
    ["with a non-uuid email_id", { email_id: "0000014a-f4d4-4f89-93b0-EXAMPLE-ses-id" }],
    ["with an upper-case uuid email_id", { email_id: "email_019E1972-E87E-7000-BF74-BA09E0ED0D62" }],
    ["at issued_at 0", { issued_at: 0 }],
    ["at the largest issued_at", { issued_at: 0xffff_ffff }],
    ["with a leading byte-order mark", { recipient: "\ufeffbom@example.com" }],
  ];

  for (const kind of KINDS) {
    for (const [name, overrides] of variants) {
      it(`${kind} ${name}`, async () => {
        const payload = { ...referencePayload(kind), ...overrides };
        const token = await sealToken(ringA, payload);
        expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(await openToken(ringA, token, kind)).toEqual(expected(payload));
      });
    }
  }

  it.each([
    ["no link name", { link_name: null }],
    ["an omitted link name", { link_name: undefined }],
    ["a link name", { link_name: "cta-primary" }],
    ["an empty link name", { link_name: "" }],
    ["a unicode link name", { link_name: "Jetzt ansehen → 😀" }],
    ["an http url", { url: "http://example.com/a?b=c#d" }],
    ["a unicode url", { url: "https://bücher.example/straße?q=日本" }],
    ["a long url", { url: `https://example.com/${"x".repeat(4000)}` }],
    ["a topic and link name", { topic: "news", link_name: "footer" }],
  ])("click with %s", async (_, overrides) => {
    const payload = { ...referencePayload("click"), ...overrides } as TokenPayload;
    const opened = await openToken(ringA, await sealToken(ringA, payload), "click");
    expect(opened).toEqual(expected(payload));
  });

  it("writes the scheme in lower case (schemes are case-insensitive)", async () => {
    const token = await sealToken(ringA, { ...referencePayload("click"), url: "HTTPS://Example.com/Path" });
    expect((await openToken(ringA, token, "click"))?.url).toBe("https://Example.com/Path");
  });

  it("seals the same payload differently every time (random IV)", async () => {
    const payload = referencePayload("open");
    const tokens = new Set(await Promise.all(Array.from({ length: 20 }, () => sealToken(ringA, payload))));
    expect(tokens.size).toBe(20);
  });

  it("round-trips 300 random payloads", async () => {
    const rng = prng(1);
    for (let i = 0; i < 300; i++) {
      const payload = randomPayload(rng);
      const token = await sealToken(ringA, payload);
      expect(token.length).toBeLessThanOrEqual(MAX_TOKEN_LENGTH);
      expect(await openToken(ringA, token, payload.kind), `payload ${i}`).toEqual(expected(payload));
    }
  });
});

describe("sealToken refuses payloads that could never be opened", () => {
  it.each<[string, Partial<TokenPayload> & { kind?: TokenKind }]>([
    ["an empty account_id", { account_id: "" }],
    ["an empty email_id", { email_id: "" }],
    ["an empty recipient", { recipient: "" }],
    ["a topic with capitals", { topic: "News" }],
    ["a topic of 65 characters", { topic: "a".repeat(65) }],
    ["an empty topic", { topic: "" }],
    ["a negative issued_at", { issued_at: -1 }],
    ["a fractional issued_at", { issued_at: 1.5 }],
    ["an issued_at past 2106", { issued_at: 2 ** 32 }],
    ["a lone surrogate", { recipient: "a\ud800@example.com" }],
    ["a url on an open token", { url: "https://example.com/" }],
    ["a link name on an unsubscribe token", { kind: "unsubscribe", link_name: "x" }],
    ["an unknown kind", { kind: "bounce" as TokenKind }],
  ])("%s", async (_, overrides) => {
    const payload = { ...referencePayload("open"), ...overrides } as TokenPayload;
    await expect(sealToken(ringA, payload)).rejects.toThrow(TypeError);
  });

  it.each([
    ["no url", undefined],
    ["a javascript: url", "javascript:alert(1)"],
    ["a mailto: url", "mailto:someone@example.com"],
    ["a relative url", "/path"],
    ["a bare scheme", "https://"],
    ["a protocol-relative url", "//example.com/"],
    ["a url too long for a token", `https://example.com/${"x".repeat(10_000)}`],
  ])("a click with %s", async (_, url) => {
    const payload = { ...referencePayload("click"), url } as TokenPayload;
    await expect(sealToken(ringA, payload)).rejects.toThrow(TypeError);
  });
});

describe("size budget (SPEC §5)", () => {
  it.each(["open", "unsubscribe"] as const)(
    "a reference %s token is at most 130 characters",
    async (kind) => {
      const token = await sealToken(ringA, referencePayload(kind));
      expect(token.length).toBeLessThanOrEqual(130);
    },
  );

  it("holds for every account id of up to 16 characters", async () => {
    for (let length = 1; length <= 16; length++) {
      for (const kind of KINDS) {
        const url = "https://example.com/welcome";
        const payload = { ...referencePayload(kind, url), account_id: "a".repeat(length) };
        const budget = kind === "click" ? 130 + Math.ceil((4 / 3) * url.length) : 130;
        expect((await sealToken(ringA, payload)).length, `${kind}, account of ${length}`).toBeLessThanOrEqual(
          budget,
        );
      }
    }
  });

  it("a reference click token is at most 130 + 4/3 of its URL's length, for every URL length", async () => {
    for (const scheme of ["https://", "http://"]) {
      for (let length = scheme.length + 1; length <= 600; length++) {
        const url = `${scheme}${"e".repeat(length - scheme.length)}`;
        const token = await sealToken(ringA, referencePayload("click", url));
        expect(token.length, url).toBeLessThanOrEqual(130 + Math.ceil((4 / 3) * url.length));
      }
    }
    for (const length of [1000, 2048, 4096, 8000]) {
      const url = `https://example.com/${"p".repeat(length - 20)}`;
      const token = await sealToken(ringA, referencePayload("click", url));
      expect(token.length).toBeLessThanOrEqual(130 + Math.ceil((4 / 3) * url.length));
    }
  });
});

describe("tampering", () => {
  it("every single-character change, at every position, fails to open (40 random tokens)", async () => {
    const rng = prng(2);
    for (let t = 0; t < 40; t++) {
      const payload = randomPayload(rng);
      const token = await sealToken(ringA, payload);
      for (let i = 0; i < token.length; i++) {
        const other = BASE64URL.replace(token[i]!, "");
        const tampered = token.slice(0, i) + rng.pick([...other]) + token.slice(i + 1);
        expect(await openToken(ringA, tampered, payload.kind), `token ${t}, position ${i}`).toBeNull();
      }
    }
  });

  it("every possible substitution fails on two tokens (every position × every other character)", async () => {
    for (const kind of ["open", "click"] as const) {
      const token = await sealToken(ringA, referencePayload(kind));
      for (let i = 0; i < token.length; i++) {
        for (const replacement of BASE64URL) {
          if (replacement === token[i]) continue;
          const tampered = token.slice(0, i) + replacement + token.slice(i + 1);
          expect(await openToken(ringA, tampered, kind), `${kind} ${i} ${replacement}`).toBeNull();
        }
      }
    }
  });

  it("every truncation and extension fails to open", async () => {
    const rng = prng(3);
    for (let t = 0; t < 10; t++) {
      const payload = randomPayload(rng);
      const token = await sealToken(ringA, payload);
      for (let length = 0; length < token.length; length++) {
        expect(await openToken(ringA, token.slice(0, length), payload.kind)).toBeNull();
      }
      for (const suffix of ["A", "AA", "AAA", "AAAA", "_", "Qw", rng.chars(BASE64URL, 1, 8)]) {
        expect(await openToken(ringA, token + suffix, payload.kind)).toBeNull();
        expect(await openToken(ringA, suffix + token, payload.kind)).toBeNull();
      }
      expect(await openToken(ringA, token.slice(1), payload.kind)).toBeNull();
    }
  });

  it("splicing two tokens together fails", async () => {
    const one = await sealToken(ringA, referencePayload("click", "https://good.example/"));
    const two = await sealToken(ringA, referencePayload("click", "https://evil.example/"));
    expect(await openToken(ringA, one.slice(0, 40) + two.slice(40), "click")).toBeNull();
  });
});

describe("kinds and keys", () => {
  for (const sealed of KINDS) {
    for (const asked of KINDS) {
      if (sealed === asked) continue;
      it(`an ${sealed} token is not accepted as ${asked}`, async () => {
        const token = await sealToken(ringA, referencePayload(sealed));
        expect(await openToken(ringA, token, asked)).toBeNull();
      });
    }
  }

  it("a token sealed with another key does not open", async () => {
    const token = await sealToken(ringB, referencePayload("open"));
    expect(await openToken(ringA, token, "open")).toBeNull();
  });

  it("rotation: an old token opens while its key is listed second, and not once it is removed", async () => {
    const before = await sealToken(ringA, referencePayload("unsubscribe")); // TRACKING_KEYS = A
    const rotated = await importTrackingKeys(
      parseTrackingKeys(`${toBase64Url(KEY_B)},${toBase64Url(KEY_A)}`),
    );
    expect(await openToken(rotated, before, "unsubscribe")).toEqual(referencePayload("unsubscribe"));

    const after = await sealToken(rotated, referencePayload("unsubscribe")); // sealed with B now
    expect(await openToken(ringB, after, "unsubscribe")).toEqual(referencePayload("unsubscribe"));
    expect(await openToken(ringA, after, "unsubscribe")).toBeNull();

    const retired = await importTrackingKeys([KEY_B]); // A removed
    expect(await openToken(retired, before, "unsubscribe")).toBeNull();
    expect(await openToken(retired, after, "unsubscribe")).toEqual(referencePayload("unsubscribe"));
  });

  it("keys whose 5-bit ids collide both open their own tokens", async () => {
    const idOf = async (key: Uint8Array) =>
      new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(key)))[0]! & 0x1f;
    const target = await idOf(KEY_A);
    let twin: Uint8Array | undefined;
    for (let seed = 1; seed < 10_000 && !twin; seed++) {
      const candidate = keyBytes(seed * 7);
      candidate[31] = seed & 0xff;
      candidate[30] = seed >> 8;
      if ((await idOf(candidate)) === target && candidate.some((b, i) => b !== KEY_A[i])) twin = candidate;
    }
    expect(twin).toBeDefined();
    const ring = await importTrackingKeys([twin!, KEY_A]);
    const old = await sealToken(ringA, referencePayload("click"));
    const fresh = await sealToken(ring, referencePayload("click"));
    expect(await openToken(ring, old, "click")).toEqual(referencePayload("click"));
    expect(await openToken(ring, fresh, "click")).toEqual(referencePayload("click"));
    expect(await openToken(ringA, fresh, "click")).toBeNull();
  });
});

describe("garbage never opens and never throws", () => {
  it.each([
    ["an empty string", ""],
    ["one character", "A"],
    ["padding", "===="],
    ["percent-encoding", "%41%42%43"],
    ["non-ASCII", "é".repeat(140)],
    ["whitespace", " ".repeat(140)],
    ["a plausible length of zeros", "A".repeat(130)],
    ["a JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"],
    ["an overlong string", "A".repeat(MAX_TOKEN_LENGTH + 1)],
  ])("%s", async (_, token) => {
    for (const kind of KINDS) expect(await openToken(ringA, token, kind)).toBeNull();
  });

  it("non-string input", async () => {
    for (const value of [null, undefined, 42, {}, ["a"]]) {
      expect(await openToken(ringA, value as unknown as string, "open")).toBeNull();
    }
  });

  it("a real token in the standard base64 alphabet, with padding, or URL-encoded", async () => {
    const rng = prng(4);
    let tried = 0;
    for (let i = 0; i < 50; i++) {
      const token = await sealToken(ringA, randomPayload(rng));
      if (!/[-_]/.test(token)) continue;
      tried++;
      const standard = token.replace(/-/g, "+").replace(/_/g, "/");
      expect(await openToken(ringA, standard, "open")).toBeNull();
      expect(await openToken(ringA, encodeURIComponent(standard), "open")).toBeNull();
    }
    expect(tried).toBeGreaterThan(0);
    const token = await sealToken(ringA, referencePayload("open"));
    expect(await openToken(ringA, `${token}=`, "open")).toBeNull();
    expect(await openToken(ringA, `${token}==`, "open")).toBeNull();
  });

  it("random base64url strings of token-like lengths", async () => {
    const rng = prng(5);
    for (let i = 0; i < 500; i++) {
      const token = rng.chars(BASE64URL, 0, 400);
      expect(await openToken(ringA, token, rng.pick(KINDS))).toBeNull();
    }
  });

  // Authentic ciphertexts of malformed payloads: the parser must refuse them, not guess.
  const head = [0x00, 0x65, 0x12, 0x34, 0x56]; // open, issued_at, then the fields
  const text = (s: string) => [...new TextEncoder().encode(s)];
  const field = (s: string) => [text(s).length, ...text(s)];
  const tail = (...fields: number[][]) => fields.flat();
  const rows: [string, TokenKind, number[], number?][] = [
    ["a well-formed open payload (control)", "open", tail(head, field("msg"), field("acct"), text("a@b.c"))],
    ["an unknown version", "open", tail(head, field("msg"), field("acct"), text("a@b.c")), 2],
    [
      "the reserved flag bit",
      "open",
      tail([0x80], head.slice(1), field("msg"), field("acct"), text("a@b.c")),
    ],
    ["kind code 3", "open", tail([0x03], head.slice(1), field("msg"), field("acct"), text("a@b.c"))],
    [
      "a url scheme on an open",
      "open",
      tail([0x20], head.slice(1), field("msg"), field("acct"), text("a@b.c")),
    ],
    [
      "a link name on an open",
      "open",
      tail([0x10], head.slice(1), field("msg"), field("acct"), text("a@b.c")),
    ],
    [
      "a click without a scheme",
      "click",
      tail([0x01], head.slice(1), field("msg"), field("acct"), field("a@b.c"), text("x.example/")),
    ],
    [
      "a click with scheme 3",
      "click",
      tail([0x61], head.slice(1), field("msg"), field("acct"), field("a@b.c"), text("x.example/")),
    ],
    [
      "a click with an empty url",
      "click",
      tail([0x21], head.slice(1), field("msg"), field("acct"), field("a@b.c")),
    ],
    ["an empty recipient", "open", tail(head, field("msg"), field("acct"))],
    ["an empty account id", "open", tail(head, field("msg"), [0], text("a@b.c"))],
    ["an empty email id", "open", tail(head, [0], field("acct"), text("a@b.c"))],
    ["a length past the end", "open", tail(head, [200], text("msg"))],
    ["a truncated issued_at", "open", [0x00, 0x65, 0x12]],
    ["a truncated compact email id", "open", tail([0x04], head.slice(1), [1, 2, 3])],
    ["a non-minimal varint", "open", tail(head, [0x83, 0x00], text("msg"), field("acct"), text("a@b.c"))],
    ["invalid UTF-8", "open", tail(head, [2, 0xc3, 0x28], field("acct"), text("a@b.c"))],
    ["invalid UTF-8 in the recipient", "open", tail(head, field("msg"), field("acct"), [0xff, 0xfe])],
    [
      "a malformed topic",
      "open",
      tail([0x08], head.slice(1), field("msg"), field("acct"), field("Bad Topic"), text("a@b.c")),
    ],
  ];
  it.each(rows)("an authentic payload with %s", async (name, kind, bytes, version) => {
    const opened = await openToken(ringA, await sealRaw(KEY_A, new Uint8Array(bytes), version), kind);
    if (name.endsWith("(control)")) {
      expect(opened).toEqual({
        kind: "open",
        account_id: "acct",
        email_id: "msg",
        recipient: "a@b.c",
        topic: null,
        issued_at: 0x65123456,
      });
    } else {
      expect(opened).toBeNull();
    }
  });
});

describe("confidentiality", () => {
  /** Every base64url rendering of `text` that could appear inside a longer encoding, at each byte alignment. */
  function renderings(text: string): string[] {
    const bytes = new TextEncoder().encode(text);
    return [0, 1, 2].map((shift) => {
      const encoded = toBase64Url(new Uint8Array([...new Uint8Array(shift), ...bytes]));
      // Drop the characters that mix in the shift bytes or the (unknown) next byte.
      const start = Math.ceil((shift * 4) / 3) + 1;
      return encoded.slice(start, Math.max(start, encoded.length - 2));
    });
  }

  it("neither the recipient nor the ids can be read out of 200 random tokens", async () => {
    const rng = prng(6);
    for (let i = 0; i < 200; i++) {
      const payload = randomPayload(rng);
      const token = await sealToken(ringA, payload);
      const bytes = fromBase64Url(token);
      const latin1 = String.fromCharCode(...bytes);
      for (const secret of [payload.recipient, payload.account_id, payload.email_id]) {
        if (secret.length < 6) continue;
        expect(token.toLowerCase()).not.toContain(secret.toLowerCase());
        expect(latin1).not.toContain(String.fromCharCode(...new TextEncoder().encode(secret)));
        for (const rendering of renderings(secret)) {
          if (rendering.length >= 8) expect(token, `payload ${i}`).not.toContain(rendering);
        }
      }
    }
  });

  it("the reference recipient does not appear in its token in any form", async () => {
    const payload = referencePayload("unsubscribe");
    const token = await sealToken(ringA, payload);
    expect(token).not.toContain("firstname");
    for (const rendering of renderings(payload.recipient)) expect(token).not.toContain(rendering);
    const local = renderings("firstname.lastname");
    for (const rendering of local) expect(token).not.toContain(rendering);
  });
});
