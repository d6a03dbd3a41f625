import { type SnsEnvelope, stringToSign } from "../../src/ses/sns";
import testCertPem from "./fixtures/test-cert.pem?raw";
import testKeyPem from "./fixtures/test-key.pem?raw";

/** SNS test material shared by the verifier's unit tests and the webhook's integration tests. */
export { testCertPem, testKeyPem };

// Every file of the shared signed fixtures, by file name.
export const signedFiles = Object.fromEntries(
  Object.entries(
    import.meta.glob<string>("../../../shared/fixtures/sns/signed/*", {
      query: "?raw",
      import: "default",
      eager: true,
    }),
  ).map(([path, text]) => [path.slice(path.lastIndexOf("/") + 1), text]),
);
export interface ManifestEntry {
  file: string;
  cert: string;
  Type: string;
  SignatureVersion: string;
  hasSubject: boolean;
  SigningCertURL: string;
  verifiesOffline: boolean;
}
export const manifest = JSON.parse(signedFiles["manifest.json"] ?? "[]") as ManifestEntry[];

export const TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events";
export const AWS_CERT_URL =
  "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem";
export const SUBSCRIBE_URL = `https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${TOPIC}&Token=abc`;

export function pemBody(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----(?:BEGIN|END) [A-Z ]+-----|\s/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
}

export async function privateKey(hash: "SHA-1" | "SHA-256"): Promise<CryptoKey> {
  return crypto.subtle.importKey("pkcs8", pemBody(testKeyPem), { name: "RSASSA-PKCS1-v1_5", hash }, false, [
    "sign",
  ]);
}

export function toBase64(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** Signs a message the way SNS does, with our test key (or another one). */
export async function signed<T extends SnsEnvelope>(msg: T, key?: CryptoKey): Promise<T> {
  const hash = msg.SignatureVersion === "1" ? "SHA-1" : "SHA-256";
  const signer = key ?? (await privateKey(hash));
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    signer,
    new TextEncoder().encode(stringToSign(msg)),
  );
  return { ...msg, Signature: toBase64(sig) };
}

export function notification(overrides: Partial<Extract<SnsEnvelope, { Type: "Notification" }>> = {}) {
  return {
    Type: "Notification" as const,
    MessageId: "6f2a5c1e-1111-5222-8333-944455556666",
    TopicArn: TOPIC,
    Subject: "Amazon SES Email Event Notification",
    Message: '{"eventType":"Send"}',
    // Now: the route refuses messages more than 6 hours old (SNS_MAX_AGE_MS).
    Timestamp: new Date().toISOString(),
    SignatureVersion: "2",
    Signature: "",
    SigningCertURL: AWS_CERT_URL,
    UnsubscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    ...overrides,
  };
}

export function confirmation(
  type: "SubscriptionConfirmation" | "UnsubscribeConfirmation",
  overrides: Partial<Extract<SnsEnvelope, { Type: "SubscriptionConfirmation" }>> = {},
) {
  return {
    Type: type,
    MessageId: "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    Token: "2336412f37fb687f5d51e6e2425dacbbab295b8a534f477ee003773c6e75c0d8",
    TopicArn: TOPIC,
    Message: `You have chosen to subscribe to the topic ${TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
    SubscribeURL: SUBSCRIBE_URL,
    // Now: the route refuses messages more than 6 hours old (SNS_MAX_AGE_MS).
    Timestamp: new Date().toISOString(),
    SignatureVersion: "1",
    Signature: "",
    SigningCertURL: AWS_CERT_URL,
    ...overrides,
  };
}
