import { importX509 } from "jose";
import * as z from "zod";
import { ApiError } from "../lib/errors";

/**
 * Amazon SNS HTTP(S) messages: parsing, the signing-URL rule and signature verification (SPEC §7).
 * Pure apart from the certificate fetch, which the caller injects.
 */

const signed = {
  MessageId: z.string().min(1),
  TopicArn: z.string().min(1),
  Message: z.string(),
  Timestamp: z.string().min(1),
  SignatureVersion: z.string().min(1),
  Signature: z.string().min(1),
  SigningCertURL: z.string().min(1),
};

const notificationSchema = z.object({
  Type: z.literal("Notification"),
  ...signed,
  // Signed only when present; SNS omits it (some tools send null) when the publisher gave none.
  Subject: z.string().nullish(),
  UnsubscribeURL: z.string().optional(),
});

const confirmation = { ...signed, Token: z.string().min(1), SubscribeURL: z.string().min(1) };

export const snsEnvelopeSchema = z
  .discriminatedUnion("Type", [
    notificationSchema,
    z.object({ Type: z.literal("SubscriptionConfirmation"), ...confirmation }),
    z.object({ Type: z.literal("UnsubscribeConfirmation"), ...confirmation }),
  ])
  .meta({ id: "SnsMessage" });
export type SnsEnvelope = z.infer<typeof snsEnvelopeSchema>;
export type SnsNotification = Extract<SnsEnvelope, { Type: "Notification" }>;
export type SnsConfirmation = Exclude<SnsEnvelope, { Type: "Notification" }>;

const SNS_TYPES = new Set(["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]);

/**
 * Reads an SNS POST body. Not JSON or no string `Type`: not an SNS message at all (`validation_error`).
 * An SNS message of another Type or lacking what verification needs: `signature_error`.
 */
export function parseSnsEnvelope(bodyText: string): SnsEnvelope {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    throw new ApiError("validation_error", "the body is not JSON; expected an Amazon SNS message");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body) || !("Type" in body)) {
    throw new ApiError("validation_error", "the body is not an Amazon SNS message (no Type)");
  }
  const type = body.Type;
  if (typeof type !== "string") {
    throw new ApiError("validation_error", "the body is not an Amazon SNS message (Type is not a string)");
  }
  if (!SNS_TYPES.has(type)) {
    throw new ApiError(
      "signature_error",
      `unsupported SNS message Type ${JSON.stringify(type.slice(0, 64))}`,
    );
  }
  const parsed = snsEnvelopeSchema.safeParse(body);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((issue) => String(issue.path[0] ?? "body")))];
    throw new ApiError(
      "signature_error",
      `SNS message cannot be verified: missing or malformed ${fields.join(", ")}`,
    );
  }
  return parsed.data;
}

/** The canonical string-to-sign: `Name\nValue\n` per signed field in byte order, last newline included. */
export function stringToSign(msg: SnsEnvelope): string {
  const pairs: Array<[string, string]> =
    msg.Type === "Notification"
      ? [
          ["Message", msg.Message],
          ["MessageId", msg.MessageId],
          ...(typeof msg.Subject === "string" ? [["Subject", msg.Subject] as [string, string]] : []),
          ["Timestamp", msg.Timestamp],
          ["TopicArn", msg.TopicArn],
          ["Type", msg.Type],
        ]
      : [
          ["Message", msg.Message],
          ["MessageId", msg.MessageId],
          ["SubscribeURL", msg.SubscribeURL],
          ["Timestamp", msg.Timestamp],
          ["Token", msg.Token],
          ["TopicArn", msg.TopicArn],
          ["Type", msg.Type],
        ];
  return pairs.map(([name, value]) => `${name}\n${value}\n`).join("");
}

/** The region of an SNS topic ARN (`arn:<partition>:sns:<region>:<account>:<name>`), or null. */
export function regionOfTopicArn(topicArn: string): string | null {
  const parts = topicArn.split(":");
  if (parts.length < 6 || parts[0] !== "arn" || parts[2] !== "sns") return null;
  const region = parts[3] ?? "";
  return /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/.test(region) ? region : null;
}

const CERT_PATH = /^\/SimpleNotificationService-[0-9a-f]+\.pem$/i;

function isLoopbackHostname(hostname: string): boolean {
  // WHATWG URL parsing has already normalised IPv4 forms (`127.1`, `0x7f.1`) to dotted decimal.
  return (
    hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/** The pattern anchored to the whole hostname, so that `sns\.test` cannot match `sns.test.evil.com`. */
function fullMatch(pattern: RegExp, hostname: string): boolean {
  return new RegExp(`^(?:${pattern.source})$`, pattern.flags.replace(/[gy]/g, "")).test(hostname);
}

/**
 * The SPEC §7 rule for the SigningCertURL (`kind: "cert"`) and the SubscribeURL (`kind: "subscribe"`).
 * AWS rule: https, no user info, no port, the host exactly `sns.<region of the TopicArn>.amazonaws.com`
 * (`.amazonaws.com.cn` for the China regions), and for certificates the path
 * `/SimpleNotificationService-<hex>.pem` with no query. With `hostPattern` (SNS_CERT_HOST_PATTERN) the
 * hostname must match the whole pattern instead, any port and any `.pem` path are allowed, and plain
 * http only for a loopback hostname (localhost, 127.0.0.0/8, [::1]).
 * Returns the parsed URL; throws `signature_error` otherwise.
 */
export function checkAwsHostUrl(
  url: string,
  topicArn: string,
  hostPattern: RegExp | null,
  kind: "cert" | "subscribe",
): URL {
  const label = kind === "cert" ? "SigningCertURL" : "SubscribeURL";
  const fail = (why: string): never => {
    throw new ApiError("signature_error", `${label} is not trusted: ${why}`);
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail("not a URL");
  }
  if (parsed.username !== "" || parsed.password !== "") fail("user info is not allowed");
  if (kind === "cert" && (parsed.search !== "" || parsed.hash !== ""))
    fail("a query or fragment is not allowed");
  if (kind === "cert" && !parsed.pathname.endsWith(".pem")) fail("the path must end in .pem");

  if (hostPattern) {
    if (!fullMatch(hostPattern, parsed.hostname))
      fail(`host ${parsed.hostname} does not match SNS_CERT_HOST_PATTERN`);
    if (parsed.protocol === "http:") {
      if (!isLoopbackHostname(parsed.hostname)) fail("plain http is allowed only for a loopback host");
    } else if (parsed.protocol !== "https:") {
      fail("the scheme must be https");
    }
    return parsed;
  }

  if (parsed.protocol !== "https:") fail("the scheme must be https");
  if (parsed.port !== "") fail("a port is not allowed");
  const region = regionOfTopicArn(topicArn);
  if (!region) return fail("the TopicArn has no region");
  // China regions are served from .amazonaws.com.cn, every other region from .amazonaws.com.
  const host = `sns.${region}.amazonaws.com${region.startsWith("cn-") ? ".cn" : ""}`;
  if (parsed.hostname !== host) fail(`host ${parsed.hostname} is not ${host}`);
  if (kind === "cert" && !CERT_PATH.test(parsed.pathname))
    fail("the path is not /SimpleNotificationService-<hex>.pem");
  return parsed;
}

type SignatureHash = "SHA-1" | "SHA-256";

/** SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA; nothing else is accepted. */
function signatureHash(version: string): SignatureHash | null {
  return version === "1" ? "SHA-1" : version === "2" ? "SHA-256" : null;
}

const KEY_CACHE_LIMIT = 32;
/** Verification keys by hash and certificate URL; only URLs that passed the host rule get here. */
const keyCache = new Map<string, Promise<CryptoKey>>();

/** Empties the key cache (tests that reuse a URL with another certificate). */
export function clearSigningKeyCache(): void {
  keyCache.clear();
}

/**
 * The certificate's RSA public key for RSASSA-PKCS1-v1_5 with the given hash.
 * jose's importX509 finds the SubjectPublicKeyInfo in the certificate, but it only knows JOSE algorithms
 * (RS256 and up; there is no SHA-1 "RS1"). So jose imports it as an extractable RS256 key, and we export
 * the SPKI and import it again, non-extractable, with the hash the SignatureVersion asks for. workerd
 * supports SHA-1 for RSASSA-PKCS1-v1_5 verification. Validity dates are not checked, like AWS's own
 * validators: trust comes from the URL rule (an AWS-owned host over https) and the signature.
 */
async function importCertificateKey(pem: string, hash: SignatureHash): Promise<CryptoKey> {
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!block) throw new ApiError("signature_error", "the signing certificate is not a PEM certificate");
  let spki: ArrayBuffer;
  try {
    const jwsKey = await importX509(block, "RS256", { extractable: true });
    spki = (await crypto.subtle.exportKey("spki", jwsKey)) as ArrayBuffer;
  } catch {
    throw new ApiError(
      "signature_error",
      "the signing certificate cannot be read (expected an RSA certificate)",
    );
  }
  return crypto.subtle.importKey("spki", spki, { name: "RSASSA-PKCS1-v1_5", hash }, false, ["verify"]);
}

function cachedKey(url: string, hash: SignatureHash, fetchCert: (url: string) => Promise<string>) {
  const cacheKey = `${hash} ${url}`;
  const hit = keyCache.get(cacheKey);
  if (hit) return hit;
  const pending = fetchCert(url).then((pem) => importCertificateKey(pem, hash));
  // A failure is not cached: the next delivery tries again.
  pending.catch(() => {
    if (keyCache.get(cacheKey) === pending) keyCache.delete(cacheKey);
  });
  if (keyCache.size >= KEY_CACHE_LIMIT) {
    const oldest = keyCache.keys().next().value;
    if (oldest !== undefined) keyCache.delete(oldest);
  }
  keyCache.set(cacheKey, pending);
  return pending;
}

function decodeBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export interface VerifyOptions {
  /** SNS_CERT_HOST_PATTERN, or null for the AWS rule. */
  hostPattern: RegExp | null;
  /** Returns the PEM certificate served at a SigningCertURL that passed the host rule. */
  fetchCert: (url: string) => Promise<string>;
}

/**
 * The checks that need no network: SignatureVersion, the SigningCertURL rule, the SubscribeURL rule
 * on confirmations, and the Signature's encoding. The route runs these before the topic allowlist,
 * so a forged message is a signature error whatever its topic, and nothing is fetched for either.
 */
export function checkSnsMessage(
  msg: SnsEnvelope,
  hostPattern: RegExp | null,
): { certUrl: URL; hash: SignatureHash; signature: Uint8Array } {
  const hash = signatureHash(msg.SignatureVersion);
  if (!hash) {
    const version = JSON.stringify(msg.SignatureVersion.slice(0, 16));
    throw new ApiError("signature_error", `unsupported SignatureVersion ${version}`);
  }
  const certUrl = checkAwsHostUrl(msg.SigningCertURL, msg.TopicArn, hostPattern, "cert");
  if (msg.Type !== "Notification") checkAwsHostUrl(msg.SubscribeURL, msg.TopicArn, hostPattern, "subscribe");
  const signature = decodeBase64(msg.Signature);
  if (!signature) throw new ApiError("signature_error", "Signature is not base64");
  return { certUrl, hash, signature };
}

/**
 * Verifies an SNS message: SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA), the SigningCertURL
 * rule, the SubscribeURL rule on confirmations, and the signature over the canonical string.
 * Every failure is `signature_error`, except a certificate fetch that failed for a reason worth retrying,
 * which `fetchCert` reports as `unavailable` (503, so SNS redelivers) and which passes through unchanged.
 */
export async function verifySnsMessage(msg: SnsEnvelope, opts: VerifyOptions): Promise<void> {
  const { certUrl, hash, signature } = checkSnsMessage(msg, opts.hostPattern);
  let key: CryptoKey;
  try {
    key = await cachedKey(certUrl.href, hash, opts.fetchCert);
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError("signature_error", "the signing certificate could not be fetched or read");
  }
  const data = new TextEncoder().encode(stringToSign(msg));
  const ok = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, signature, data);
  if (!ok) throw new ApiError("signature_error", "the SNS message signature does not verify");
}

/**
 * How old a verified SNS message may be. SNS stops retrying an HTTP/S delivery after at most 3,600 s
 * (a hard AWS limit, whatever the subscription's delivery policy), so a genuine message is never
 * older than about an hour when it arrives; 6 hours leaves room for SNS's own backlog under
 * throttling and for clock skew. Older, it is a captured message replayed: refused, so that a bounce
 * whose event the purge removed cannot restore a suppression the customer deleted (the shortest
 * retention a plan can have is 1 day).
 */
export const SNS_MAX_AGE_MS = 6 * 3_600_000;
/** Clock skew tolerated for a Timestamp in the future. */
export const SNS_MAX_FUTURE_MS = 15 * 60_000;

/** Refuses a verified message whose signed Timestamp is too old (a replay) or in the future. */
export function checkSnsFreshness(msg: SnsEnvelope, now: number): void {
  const sent = Date.parse(msg.Timestamp);
  if (!Number.isFinite(sent)) throw new ApiError("signature_error", "the SNS Timestamp is not a date");
  if (now - sent > SNS_MAX_AGE_MS) {
    throw new ApiError("signature_error", "the SNS message is more than 6 hours old; refused as a replay");
  }
  if (sent - now > SNS_MAX_FUTURE_MS) {
    throw new ApiError("signature_error", "the SNS Timestamp is in the future");
  }
}

const CERT_FETCH_TIMEOUT_MS = 5_000;
const CERT_MAX_BYTES = 64 * 1024;

/**
 * The default certificate fetcher. No redirects are followed: the certificate must come from the URL that
 * passed the host rule. A network error, timeout or 5xx is `unavailable` (worth retrying); any other
 * status or a body that is not a PEM certificate is `signature_error`.
 */
export async function fetchCertificate(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(CERT_FETCH_TIMEOUT_MS) });
  } catch {
    throw new ApiError("unavailable", "the SNS signing certificate could not be fetched; retry");
  }
  if (res.status >= 500) {
    await res.body?.cancel();
    throw new ApiError("unavailable", `the SNS signing certificate host answered ${res.status}; retry`);
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new ApiError("signature_error", `the SNS signing certificate URL answered ${res.status}`);
  }
  const pem = await res.text();
  if (pem.length > CERT_MAX_BYTES || !pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ApiError("signature_error", "the SNS signing certificate URL did not serve a PEM certificate");
  }
  return pem;
}
