import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../../src/lib/errors";
import {
  checkAwsHostUrl,
  clearSigningKeyCache,
  fetchCertificate,
  parseSnsEnvelope,
  regionOfTopicArn,
  type SnsEnvelope,
  stringToSign,
  verifySnsMessage,
} from "../../src/ses/sns";
import {
  AWS_CERT_URL,
  confirmation,
  manifest,
  notification,
  SUBSCRIBE_URL,
  signed,
  signedFiles,
  testCertPem,
  testKeyPem,
} from "./sns-fixtures";

/** A fetchCert that serves one PEM and counts its calls. */
function serving(pem: string = testCertPem) {
  return vi.fn(async (_url: string) => pem);
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected a rejection");
}

function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected a throw");
}

beforeEach(() => clearSigningKeyCache());

describe("parseSnsEnvelope", () => {
  it.each([
    ["not JSON", "Hello world"],
    ["empty", ""],
    ["a JSON array", "[1,2]"],
    ["a JSON string", '"Notification"'],
    ["null", "null"],
    ["an object without Type", '{"MessageId":"x","Message":"y"}'],
    ["a non-string Type", '{"Type":7}'],
  ])("answers validation_error for %s", (_name, body) => {
    const err = thrown(() => parseSnsEnvelope(body));
    expect(err.type).toBe("validation_error");
  });

  it("answers signature_error for an unknown SNS Type", () => {
    const err = thrown(() => parseSnsEnvelope(JSON.stringify({ ...notification(), Type: "Telegram" })));
    expect(err.type).toBe("signature_error");
    expect(err.message).toContain("Telegram");
  });

  it.each([
    "Signature",
    "SigningCertURL",
    "SignatureVersion",
    "MessageId",
    "Timestamp",
    "TopicArn",
    "Message",
  ])("answers signature_error for a Notification without %s", (field) => {
    const msg: Record<string, unknown> = { ...notification(), Signature: "c2ln" };
    delete msg[field];
    const err = thrown(() => parseSnsEnvelope(JSON.stringify(msg)));
    expect(err.type).toBe("signature_error");
    expect(err.message).toContain(field);
  });

  it.each([
    ["SubscriptionConfirmation", "Token"],
    ["SubscriptionConfirmation", "SubscribeURL"],
    ["UnsubscribeConfirmation", "Token"],
    ["UnsubscribeConfirmation", "SubscribeURL"],
  ] as const)("answers signature_error for a %s without %s", (type, field) => {
    const msg: Record<string, unknown> = { ...confirmation(type), Signature: "c2ln" };
    delete msg[field];
    const err = thrown(() => parseSnsEnvelope(JSON.stringify(msg)));
    expect(err.type).toBe("signature_error");
    expect(err.message).toContain(field);
  });

  it("answers signature_error for a field of the wrong type", () => {
    const err = thrown(() => parseSnsEnvelope(JSON.stringify({ ...notification(), Signature: 42 })));
    expect(err.type).toBe("signature_error");
  });

  it("reads the three envelope types and keeps unsigned extras out of the result", () => {
    const n = parseSnsEnvelope(
      JSON.stringify({ ...notification({ Signature: "c2ln" }), MessageAttributes: {} }),
    );
    expect(n.Type).toBe("Notification");
    expect(n).not.toHaveProperty("MessageAttributes");
    const s = parseSnsEnvelope(
      JSON.stringify(confirmation("SubscriptionConfirmation", { Signature: "c2ln" })),
    );
    expect(s.Type).toBe("SubscriptionConfirmation");
    const u = parseSnsEnvelope(
      JSON.stringify(confirmation("UnsubscribeConfirmation", { Signature: "c2ln" })),
    );
    expect(u.Type === "UnsubscribeConfirmation" && u.SubscribeURL).toBe(SUBSCRIBE_URL);
  });
});

describe("stringToSign", () => {
  it("builds a Notification's string with its Subject, the last newline included", () => {
    const msg = parseSnsEnvelope(signedFiles["aws-php-notification-sigv1-subject.json"] ?? "");
    expect(stringToSign(msg)).toBe(
      "Message\nHello world\nMessageId\n11405cc3-9ac7-56d5-b45d-079e8f7a8edf\nSubject\nHello world\n" +
        "Timestamp\n2022-07-28T22:53:49.654Z\n" +
        "TopicArn\narn:aws:sns:us-east-2:295079676684:publish-and-verify-6e11fed2-fcdf-4c52-9dc4-36ef43f37f84\n" +
        "Type\nNotification\n",
    );
  });

  it("leaves out an absent or null Subject", () => {
    const base = notification({ Message: "m", MessageId: "i", Timestamp: "t", TopicArn: "a" });
    const expected = "Message\nm\nMessageId\ni\nTimestamp\nt\nTopicArn\na\nType\nNotification\n";
    expect(stringToSign({ ...base, Subject: undefined })).toBe(expected);
    expect(stringToSign({ ...base, Subject: null })).toBe(expected);
    expect(stringToSign({ ...base, Subject: "" })).toBe(
      "Message\nm\nMessageId\ni\nSubject\n\nTimestamp\nt\nTopicArn\na\nType\nNotification\n",
    );
  });

  it.each(["SubscriptionConfirmation", "UnsubscribeConfirmation"] as const)(
    "builds a %s's string",
    (type) => {
      const msg = confirmation(type, {
        Message: "m",
        MessageId: "i",
        Timestamp: "t",
        TopicArn: "a",
        Token: "k",
      });
      expect(stringToSign({ ...msg, SubscribeURL: "u" })).toBe(
        `Message\nm\nMessageId\ni\nSubscribeURL\nu\nTimestamp\nt\nToken\nk\nTopicArn\na\nType\n${type}\n`,
      );
    },
  );
});

describe("real AWS-signed fixtures", () => {
  it("covers every signed fixture in the manifest", () => {
    const messages = Object.keys(signedFiles).filter((f) => f.endsWith(".json") && f !== "manifest.json");
    expect(messages.sort()).toEqual(manifest.map((m) => m.file).sort());
    expect(manifest.length).toBe(12);
    for (const entry of manifest) expect(signedFiles[entry.cert]).toContain("BEGIN CERTIFICATE");
  });

  it.each(manifest.map((m) => [m.file, m] as const))("%s", async (_file, entry) => {
    const msg = parseSnsEnvelope(signedFiles[entry.file] ?? "");
    expect(msg.Type).toBe(entry.Type);
    expect(msg.SignatureVersion).toBe(entry.SignatureVersion);
    expect(msg.SigningCertURL).toBe(entry.SigningCertURL);
    expect(stringToSign(msg).includes("\nSubject\n")).toBe(entry.hasSubject);
    // The AWS URL rule (no pattern) must accept every real message, tampered or not.
    expect(checkAwsHostUrl(msg.SigningCertURL, msg.TopicArn, null, "cert").hostname).toMatch(
      /^sns\.us-east-[12]\.amazonaws\.com$/,
    );
    const fetchCert = serving(signedFiles[entry.cert]);
    const result = verifySnsMessage(msg, { hostPattern: null, fetchCert });
    if (entry.verifiesOffline) {
      await expect(result).resolves.toBeUndefined();
    } else {
      const err = await rejection(result);
      expect(err.type).toBe("signature_error");
      expect(err.message).toContain("does not verify");
    }
    expect(fetchCert).toHaveBeenCalledWith(entry.SigningCertURL);
  });

  it("fails a real message whose Subject or Message was changed", async () => {
    const original = parseSnsEnvelope(signedFiles["aws-php-notification-sigv2-subject.json"] ?? "");
    const pem = signedFiles["aws-php-notification-sigv2-subject.pem"];
    for (const tampered of [
      { ...original, Subject: "Hello World" },
      { ...original, Subject: undefined },
      { ...original, Message: "Hello world " },
    ]) {
      const err = await rejection(verifySnsMessage(tampered, { hostPattern: null, fetchCert: serving(pem) }));
      expect(err.type).toBe("signature_error");
    }
  });

  it("fails a real v1 message presented as v2", async () => {
    const msg = parseSnsEnvelope(signedFiles["aws-php-notification-sigv1.json"] ?? "");
    const pem = signedFiles["aws-php-notification-sigv1.pem"];
    const err = await rejection(
      verifySnsMessage({ ...msg, SignatureVersion: "2" }, { hostPattern: null, fetchCert: serving(pem) }),
    );
    expect(err.type).toBe("signature_error");
  });

  it("fails a real message checked against another real certificate", async () => {
    const msg = parseSnsEnvelope(signedFiles["notification-sigv1-2019.json"] ?? "");
    const wrongPem = signedFiles["aws-php-notification-sigv1.pem"];
    const err = await rejection(verifySnsMessage(msg, { hostPattern: null, fetchCert: serving(wrongPem) }));
    expect(err.type).toBe("signature_error");
  });
});

describe("verifySnsMessage with the test certificate", () => {
  const aws = { hostPattern: null };

  it.each([
    ["v1 Notification with Subject", () => notification({ SignatureVersion: "1" })],
    ["v1 Notification without Subject", () => notification({ SignatureVersion: "1", Subject: undefined })],
    ["v2 Notification with Subject", () => notification({ SignatureVersion: "2" })],
    ["v2 Notification without Subject", () => notification({ SignatureVersion: "2", Subject: undefined })],
    ["v1 SubscriptionConfirmation", () => confirmation("SubscriptionConfirmation")],
    [
      "v2 SubscriptionConfirmation",
      () => confirmation("SubscriptionConfirmation", { SignatureVersion: "2" }),
    ],
    ["v1 UnsubscribeConfirmation", () => confirmation("UnsubscribeConfirmation")],
    ["v2 UnsubscribeConfirmation", () => confirmation("UnsubscribeConfirmation", { SignatureVersion: "2" })],
  ] as const)("verifies a %s", async (_name, make) => {
    const msg = await signed(make() as SnsEnvelope);
    // Through the parser too, as the route sees it.
    const parsed = parseSnsEnvelope(JSON.stringify(msg));
    const fetchCert = serving();
    await expect(verifySnsMessage(parsed, { ...aws, fetchCert })).resolves.toBeUndefined();
    expect(fetchCert).toHaveBeenCalledWith(AWS_CERT_URL);
  });

  it("verifies a China-region message on the .amazonaws.com.cn host", async () => {
    const msg = await signed(
      notification({
        TopicArn: "arn:aws-cn:sns:cn-north-1:123456789012:ses-events",
        SigningCertURL: "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc123.pem",
      }),
    );
    await expect(verifySnsMessage(msg, { ...aws, fetchCert: serving() })).resolves.toBeUndefined();
  });

  it.each(["", "0", "3", "01", "1.0", " 1", "v2", "SHA256"])(
    "fails SignatureVersion %j before fetching anything",
    async (version) => {
      const msg = { ...(await signed(notification({ SignatureVersion: "2" }))), SignatureVersion: version };
      const fetchCert = serving();
      const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert }));
      expect(err.type).toBe("signature_error");
      expect(err.message).toContain("SignatureVersion");
      expect(fetchCert).not.toHaveBeenCalled();
    },
  );

  it.each([
    ["http scheme", "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem"],
    ["another region", "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-0123abcd.pem"],
    ["an S3 host", "https://s3.amazonaws.com/SimpleNotificationService-0123abcd.pem"],
    [
      "a look-alike suffix",
      "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-0123abcd.pem",
    ],
    ["a bad path", "https://sns.us-east-1.amazonaws.com/certs/evil.pem"],
    ["a non-pem path", "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.txt"],
    ["user info", "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-0123abcd.pem"],
  ])("fails a SigningCertURL with %s, fetching nothing", async (_name, url) => {
    const msg = await signed(notification({ SigningCertURL: url }));
    const fetchCert = serving();
    const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert }));
    expect(err.type).toBe("signature_error");
    expect(err.message).toContain("SigningCertURL");
    expect(fetchCert).not.toHaveBeenCalled();
  });

  it.each([
    ["another host", "https://evil.example/?Action=ConfirmSubscription"],
    ["http scheme", `http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription`],
    ["another region", "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"],
  ])("fails a SubscriptionConfirmation whose SubscribeURL has %s, fetching nothing", async (_name, url) => {
    for (const type of ["SubscriptionConfirmation", "UnsubscribeConfirmation"] as const) {
      const msg = await signed(confirmation(type, { SubscribeURL: url }));
      const fetchCert = serving();
      const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert }));
      expect(err.type).toBe("signature_error");
      expect(err.message).toContain("SubscribeURL");
      expect(fetchCert).not.toHaveBeenCalled();
    }
  });

  it("accepts a loopback http certificate URL in pattern mode only", async () => {
    const url = "http://127.0.0.1:4566/_aws/sns/SimpleNotificationService-local.pem";
    const msg = await signed(notification({ SigningCertURL: url }));
    const pattern = /127\.0\.0\.1|localhost/;
    await expect(
      verifySnsMessage(msg, { hostPattern: pattern, fetchCert: serving() }),
    ).resolves.toBeUndefined();
    const err = await rejection(verifySnsMessage(msg, { hostPattern: null, fetchCert: serving() }));
    expect(err.type).toBe("signature_error");
  });

  it("fails plain http to a non-loopback host in pattern mode, fetching nothing", async () => {
    const msg = await signed(notification({ SigningCertURL: "http://sns.test/cert.pem" }));
    const fetchCert = serving();
    const err = await rejection(verifySnsMessage(msg, { hostPattern: /sns\.test/, fetchCert }));
    expect(err.type).toBe("signature_error");
    expect(err.message).toContain("loopback");
    expect(fetchCert).not.toHaveBeenCalled();
  });

  it("fails an AWS certificate URL that the pattern does not match", async () => {
    const msg = await signed(notification());
    const err = await rejection(verifySnsMessage(msg, { hostPattern: /sns\.test/, fetchCert: serving() }));
    expect(err.type).toBe("signature_error");
    expect(err.message).toContain("SNS_CERT_HOST_PATTERN");
  });

  it.each([
    ["Message", { Message: '{"eventType":"Bounce"}' }],
    ["Subject", { Subject: "Amazon SES Email Event Notification!" }],
    ["removed Subject", { Subject: undefined }],
    ["TopicArn", { TopicArn: "arn:aws:sns:us-east-1:123456789012:ses-shared" }],
    ["MessageId", { MessageId: "6f2a5c1e-1111-5222-8333-944455556667" }],
    ["Timestamp", { Timestamp: "2026-04-09T10:30:10.000Z" }],
  ])("fails a Notification with a tampered %s", async (_name, change) => {
    for (const version of ["1", "2"]) {
      const msg = { ...(await signed(notification({ SignatureVersion: version }))), ...change };
      const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert: serving() }));
      expect(err.type).toBe("signature_error");
      expect(err.message).toContain("does not verify");
    }
  });

  it("fails a Notification that gained a Subject", async () => {
    const msg = { ...(await signed(notification({ Subject: undefined }))), Subject: "added" };
    const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert: serving() }));
    expect(err.type).toBe("signature_error");
  });

  it.each([
    ["Token", { Token: "2336412f37fb687f5d51e6e2425dacbbab295b8a534f477ee003773c6e75c0d9" }],
    ["SubscribeURL", { SubscribeURL: `${SUBSCRIBE_URL}x` }],
    ["Message", { Message: "subscribe me elsewhere" }],
    ["TopicArn", { TopicArn: "arn:aws:sns:us-east-1:123456789012:other" }],
  ])("fails a SubscriptionConfirmation with a tampered %s", async (_name, change) => {
    const msg = { ...(await signed(confirmation("SubscriptionConfirmation"))), ...change };
    const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert: serving() }));
    expect(err.type).toBe("signature_error");
  });

  it("fails a confirmation whose Type was switched", async () => {
    const msg = await signed(confirmation("UnsubscribeConfirmation"));
    const err = await rejection(
      verifySnsMessage({ ...msg, Type: "SubscriptionConfirmation" }, { ...aws, fetchCert: serving() }),
    );
    expect(err.type).toBe("signature_error");
  });

  it("fails a v1 signature sent as v2 and a v2 signature sent as v1", async () => {
    const v1 = await signed(notification({ SignatureVersion: "1" }));
    const v2 = await signed(notification({ SignatureVersion: "2" }));
    for (const msg of [
      { ...v1, SignatureVersion: "2" },
      { ...v2, SignatureVersion: "1" },
    ]) {
      const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert: serving() }));
      expect(err.type).toBe("signature_error");
    }
  });

  it("fails a signature made with another key", async () => {
    for (const [version, hash] of [
      ["1", "SHA-1"],
      ["2", "SHA-256"],
    ] as const) {
      const other = (await crypto.subtle.generateKey(
        { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash },
        false,
        ["sign", "verify"],
      )) as CryptoKeyPair;
      const msg = await signed(notification({ SignatureVersion: version }), other.privateKey);
      const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert: serving() }));
      expect(err.type).toBe("signature_error");
      expect(err.message).toContain("does not verify");
    }
  });

  it.each([
    ["not base64", "not base64!"],
    ["badly padded", "abc"],
    ["empty after parse", "===="],
  ])("fails a Signature that is %s", async (_name, signature) => {
    const msg = { ...(await signed(notification())), Signature: signature };
    const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert: serving() }));
    expect(err.type).toBe("signature_error");
  });

  it("fails when the certificate cannot be fetched or read", async () => {
    const msg = await signed(notification());
    const cases: Array<(url: string) => Promise<string>> = [
      async () => {
        throw new TypeError("network down");
      },
      async () => "<html>not found</html>",
      async () => "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
      async () => testKeyPem,
    ];
    for (const fetchCert of cases) {
      const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert }));
      expect(err.type).toBe("signature_error");
      expect(err.status).toBe(400);
    }
  });

  it("passes through a fetcher's unavailable error so that SNS retries", async () => {
    const msg = await signed(notification());
    const fetchCert = vi.fn(async () => {
      throw new ApiError("unavailable", "cert host down");
    });
    const err = await rejection(verifySnsMessage(msg, { ...aws, fetchCert }));
    expect(err.type).toBe("unavailable");
    expect(err.status).toBe(503);
  });

  it("accepts a PEM with text around the certificate", async () => {
    const msg = await signed(notification());
    const pem = `Subject: CN=sns.test\n${testCertPem}\ntrailing text\n`;
    await expect(verifySnsMessage(msg, { ...aws, fetchCert: serving(pem) })).resolves.toBeUndefined();
  });
});

describe("the key cache", () => {
  it("fetches a certificate URL once, per signature hash", async () => {
    const fetchCert = serving();
    const opts = { hostPattern: null, fetchCert };
    await verifySnsMessage(await signed(notification({ SignatureVersion: "2" })), opts);
    await verifySnsMessage(await signed(notification({ SignatureVersion: "2", Message: "other" })), opts);
    expect(fetchCert).toHaveBeenCalledTimes(1);
    await verifySnsMessage(await signed(notification({ SignatureVersion: "1" })), opts);
    expect(fetchCert).toHaveBeenCalledTimes(2);
    await verifySnsMessage(await signed(confirmation("SubscriptionConfirmation")), opts);
    expect(fetchCert).toHaveBeenCalledTimes(2);
  });

  it("shares one fetch between concurrent verifications", async () => {
    const fetchCert = serving();
    const msg = await signed(notification());
    await Promise.all([1, 2, 3].map(() => verifySnsMessage(msg, { hostPattern: null, fetchCert })));
    expect(fetchCert).toHaveBeenCalledTimes(1);
  });

  it("does not cache a failed fetch", async () => {
    const msg = await signed(notification());
    const failing = vi.fn(async () => {
      throw new Error("boom");
    });
    await rejection(verifySnsMessage(msg, { hostPattern: null, fetchCert: failing }));
    const fetchCert = serving();
    await expect(verifySnsMessage(msg, { hostPattern: null, fetchCert })).resolves.toBeUndefined();
    expect(fetchCert).toHaveBeenCalledTimes(1);
  });

  it("is bounded: the oldest URL is evicted", async () => {
    const fetchCert = serving();
    const opts = { hostPattern: /sns\.test/, fetchCert };
    const urlOf = (i: number) => `https://sns.test/cert-${i}.pem`;
    for (let i = 0; i <= 32; i++) {
      await verifySnsMessage(await signed(notification({ SigningCertURL: urlOf(i) })), opts);
    }
    expect(fetchCert).toHaveBeenCalledTimes(33);
    // cert-1 … cert-32 are still cached; cert-0 was evicted by the 33rd.
    await verifySnsMessage(await signed(notification({ SigningCertURL: urlOf(32) })), opts);
    expect(fetchCert).toHaveBeenCalledTimes(33);
    await verifySnsMessage(await signed(notification({ SigningCertURL: urlOf(0) })), opts);
    expect(fetchCert).toHaveBeenCalledTimes(34);
  });
});

describe("checkAwsHostUrl", () => {
  const EAST = "arn:aws:sns:us-east-1:123456789012:ses-events";
  const CN = "arn:aws-cn:sns:cn-north-1:123456789012:ses-events";
  const CERT = "/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem";

  const cases: Array<[string, string, RegExp | null, "cert" | "subscribe", boolean]> = [
    // The AWS rule, certificates.
    [`https://sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", true],
    [`https://SNS.US-EAST-1.AMAZONAWS.COM${CERT}`, EAST, null, "cert", true],
    [`https://sns.us-east-1.amazonaws.com:443${CERT}`, EAST, null, "cert", true],
    [`https://sns.cn-north-1.amazonaws.com.cn${CERT}`, CN, null, "cert", true],
    // China regions live on .amazonaws.com.cn only, the others on .amazonaws.com only.
    [`https://sns.us-east-1.amazonaws.com.cn${CERT}`, EAST, null, "cert", false],
    [`https://sns.cn-north-1.amazonaws.com${CERT}`, CN, null, "cert", false],
    [
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ABCDEF0123.pem`,
      EAST,
      null,
      "cert",
      true,
    ],
    [`http://sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [
      `https://sns.us-east-1.amazonaws.com${CERT}`,
      "arn:aws:sns:us-east-1:123456789012:ses-events:extra",
      null,
      "cert",
      true,
    ],
    [`https://sns.us-east-2.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://sns.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://s3.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://s3.amazonaws.com/sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com.evil.com${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com%2eevil.com${CERT}`, EAST, null, "cert", false],
    [`https://evilsns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://x.sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com.${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com@evil.com${CERT}`, EAST, null, "cert", false],
    [`https://user:pw@sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com:8443${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com/certs${CERT}`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com${CERT}?x=1`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com${CERT}#x`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com${CERT}.txt`, EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com/other.pem`, EAST, null, "cert", false],
    [`ftp://sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    [`//sns.us-east-1.amazonaws.com${CERT}`, EAST, null, "cert", false],
    ["not a url", EAST, null, "cert", false],
    [`https://sns.us-east-1.amazonaws.com${CERT}`, "not-an-arn", null, "cert", false],
    [
      `https://sns.us-east-1.amazonaws.com${CERT}`,
      "arn:aws:sqs:us-east-1:123456789012:q",
      null,
      "cert",
      false,
    ],
    [`https://sns.evil.com${CERT}`, "arn:aws:sns:evil.com:1:x", null, "cert", false],
    // The AWS rule, subscribe URLs: same host, any path.
    [
      "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
      EAST,
      null,
      "subscribe",
      true,
    ],
    ["https://sns.us-east-1.amazonaws.com/", EAST, null, "subscribe", true],
    ["http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", EAST, null, "subscribe", false],
    ["https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription", EAST, null, "subscribe", false],
    ["https://evil.com/?Action=ConfirmSubscription", EAST, null, "subscribe", false],
    ["https://a:b@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", EAST, null, "subscribe", false],
    ["https://sns.us-east-1.amazonaws.com:444/?Action=ConfirmSubscription", EAST, null, "subscribe", false],
    // Pattern mode (SNS_CERT_HOST_PATTERN).
    ["https://sns.test/any/path/cert.pem", EAST, /sns\.test/, "cert", true],
    ["https://sns.test:8443/x.pem", EAST, /sns\.test/, "cert", true],
    ["https://sns.test/x.pem", "not-an-arn", /sns\.test/, "cert", true],
    ["https://SNS.TEST/x.pem", EAST, /sns\.test/, "cert", true],
    ["https://sns.test.evil.com/x.pem", EAST, /sns\.test/, "cert", false],
    ["https://evilsns.test/x.pem", EAST, /sns\.test/, "cert", false],
    ["https://b.test.evil/x.pem", EAST, /a\.test|b\.test/, "cert", false],
    ["https://b.test/x.pem", EAST, /a\.test|b\.test/, "cert", true],
    ["https://sns.test/x.txt", EAST, /sns\.test/, "cert", false],
    ["https://sns.test/x.pem?y", EAST, /sns\.test/, "cert", false],
    [`https://sns.us-east-1.amazonaws.com${CERT}`, EAST, /sns\.test/, "cert", false],
    ["http://sns.test/x.pem", EAST, /sns\.test/, "cert", false],
    ["http://10.0.0.1/x.pem", EAST, /10\.0\.0\.1/, "cert", false],
    ["http://localhost:4566/_aws/sns/SimpleNotificationService-abc.pem", EAST, /localhost/, "cert", true],
    ["http://127.0.0.1:4566/x.pem", EAST, /127\.0\.0\.1/, "cert", true],
    ["http://127.1/x.pem", EAST, /127\.0\.0\.1/, "cert", true],
    ["http://127.9.8.7/x.pem", EAST, /127\.\d+\.\d+\.\d+/, "cert", true],
    ["http://[::1]:4566/x.pem", EAST, /\[::1\]/, "cert", true],
    ["http://localhost.evil.com/x.pem", EAST, /localhost.*/, "cert", false],
    ["http://user@localhost/x.pem", EAST, /localhost/, "cert", false],
    ["ftp://localhost/x.pem", EAST, /localhost/, "cert", false],
    ["http://localhost:4566/?Action=ConfirmSubscription", EAST, /localhost/, "subscribe", true],
    ["https://sns.test/?Action=ConfirmSubscription", EAST, /sns\.test/, "subscribe", true],
    ["http://sns.test/?Action=ConfirmSubscription", EAST, /sns\.test/, "subscribe", false],
    ["https://other.test/?Action=ConfirmSubscription", EAST, /sns\.test/, "subscribe", false],
  ];

  it.each(cases)("%s (topic %s, pattern %s, %s) → %s", (url, topic, pattern, kind, ok) => {
    if (ok) {
      expect(checkAwsHostUrl(url, topic, pattern, kind)).toBeInstanceOf(URL);
    } else {
      const err = thrown(() => checkAwsHostUrl(url, topic, pattern, kind));
      expect(err.type).toBe("signature_error");
      expect(err.message).toContain(kind === "cert" ? "SigningCertURL" : "SubscribeURL");
    }
  });

  it("is not fooled by a global pattern's lastIndex", () => {
    const pattern = /sns\.test/g;
    for (let i = 0; i < 3; i++)
      expect(checkAwsHostUrl("https://sns.test/x.pem", EAST, pattern, "cert")).toBeTruthy();
  });

  it.each([
    ["arn:aws:sns:us-east-1:123456789012:t", "us-east-1"],
    ["arn:aws:sns:eu-central-1:123456789012:t", "eu-central-1"],
    ["arn:aws-us-gov:sns:us-gov-west-1:123456789012:t", "us-gov-west-1"],
    ["arn:aws-cn:sns:cn-north-1:123456789012:t", "cn-north-1"],
    ["arn:aws:sns:us-east-1:123456789012", null],
    ["arn:aws:sns::123456789012:t", null],
    ["arn:aws:sns:US-EAST-1:123456789012:t", null],
    ["arn:aws:sns:evil.com/x:1:t", null],
  ])("regionOfTopicArn(%s) = %s", (arn, region) => {
    expect(regionOfTopicArn(arn)).toBe(region);
  });
});

describe("fetchCertificate", () => {
  const URL_ = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem";
  afterEach(() => vi.restoreAllMocks());

  it("returns the PEM of a 200, without following redirects and with a timeout", async () => {
    const spy = vi.spyOn(globalThis, "fetch").mockResolvedValue(new Response(testCertPem));
    await expect(fetchCertificate(URL_)).resolves.toBe(testCertPem);
    expect(spy).toHaveBeenCalledTimes(1);
    const init = spy.mock.calls[0]?.[1];
    expect(spy.mock.calls[0]?.[0]).toBe(URL_);
    expect(init?.redirect).toBe("manual");
    expect(init?.signal).toBeInstanceOf(AbortSignal);
  });

  it.each([
    [404, "nope"],
    [403, "denied"],
    [301, ""],
    [200, "<html>hello</html>"],
    [200, `${"x".repeat(70_000)}-----BEGIN CERTIFICATE-----`],
  ])("answers signature_error for status %s with a bad body", async (status, body) => {
    vi.spyOn(globalThis, "fetch").mockResolvedValue(
      new Response(body || null, {
        status,
        headers: status === 301 ? { location: "https://evil.example/" } : {},
      }),
    );
    const err = await rejection(fetchCertificate(URL_));
    expect(err.type).toBe("signature_error");
  });

  it.each([500, 502, 503])("answers unavailable for status %s", async (status) => {
    vi.spyOn(globalThis, "fetch").mockResolvedValue(new Response("down", { status }));
    const err = await rejection(fetchCertificate(URL_));
    expect(err.type).toBe("unavailable");
  });

  it("answers unavailable when the fetch itself fails (network, timeout)", async () => {
    vi.spyOn(globalThis, "fetch").mockRejectedValue(new DOMException("timed out", "TimeoutError"));
    const err = await rejection(fetchCertificate(URL_));
    expect(err.type).toBe("unavailable");
  });
});
