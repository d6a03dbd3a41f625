import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import type { QueueMessage } from "../../src/pipeline/messages";
import { trackingKeyring } from "../../src/tracking/keyring";
import { importTrackingKeys, sealToken, type TokenPayload } from "../../src/tracking/token";
import { call, json, mintToken } from "../helpers";

/** The tracking origin of the test configuration (PUBLIC_BASE_URL in vitest.config.ts). */
export const TRACK = "https://t.mailtrail.test";

export const CHROME_UA =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
export const GOOGLE_PROXY_UA =
  "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
export const BARRACUDA_UA = "Barracuda Sentinel (EE)";

export interface Served {
  res: Response;
  /** Every message the route handed to the queue (forwarded to the real EVENTS_QUEUE too). */
  queued: QueueMessage[];
  /** Every use of the D1 and KV bindings while serving, response and waitUntil work included. */
  storageCalls: string[];
}

export interface ServeOptions {
  /** Make the queue refuse sends, the way an outage does. */
  failQueue?: boolean;
  /** Variables to override for this request (a fresh env object, so configuration is parsed anew). */
  vars?: Partial<Record<"TRACKING_KEYS" | "PUBLIC_BASE_URL", string>>;
}

/**
 * Serves one request through the Worker's own fetch handler and waits for its waitUntil work. The
 * bindings are the real ones behind thin proxies: the queue records what it forwards, D1 and KV
 * count every property used (a read would have to touch one).
 */
export async function serve(request: Request, options: ServeOptions = {}): Promise<Served> {
  const queued: QueueMessage[] = [];
  const storageCalls: string[] = [];
  const realQueue = env.EVENTS_QUEUE;
  const queue = new Proxy(realQueue, {
    get(target, prop) {
      if (prop === "send") {
        return (body: QueueMessage, opts?: QueueSendOptions) => {
          if (options.failQueue) return Promise.reject(new Error("queue unavailable"));
          queued.push(body);
          return target.send(body, opts);
        };
      }
      if (prop === "sendBatch") {
        return (batch: Iterable<MessageSendRequest<QueueMessage>>, opts?: QueueSendBatchOptions) => {
          if (options.failQueue) return Promise.reject(new Error("queue unavailable"));
          const list = [...batch];
          queued.push(...list.map((m) => m.body));
          return target.sendBatch(list, opts);
        };
      }
      return Reflect.get(target, prop);
    },
  });
  const counting = <T extends object>(name: string, binding: T): T =>
    new Proxy(binding, {
      get(target, prop) {
        storageCalls.push(`${name}.${String(prop)}`);
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const testEnv: Env = {
    ...(env as unknown as Env),
    ...options.vars,
    EVENTS_QUEUE: queue,
    // Every D1 binding: the control database and each event shard (SPEC §17).
    ...Object.fromEntries(
      Object.entries(env)
        .filter(([name]) => name === "DB" || /^EVENTS_\d+$/.test(name))
        .map(([name, db]) => [name, counting(name, db as D1Database)]),
    ),
    SUPPRESSIONS: counting("SUPPRESSIONS", env.SUPPRESSIONS),
  };
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, testEnv, ctx);
  await waitOnExecutionContext(ctx);
  return { res, queued, storageCalls };
}

export interface TrackingRequestInit {
  method?: string;
  userAgent?: string | null;
  ip?: string;
  cf?: Record<string, unknown>;
  headers?: Record<string, string>;
  body?: BodyInit;
}

/** A request to a tracking path as a mail client would send it; a browser user agent by default. */
export function trackingRequest(path: string, init: TrackingRequestInit = {}): Request {
  const headers = new Headers(init.headers);
  const ua = init.userAgent === undefined ? CHROME_UA : init.userAgent;
  if (ua !== null) headers.set("user-agent", ua);
  headers.set("cf-connecting-ip", init.ip ?? "203.0.113.9");
  return new Request(`${TRACK}${path}`, {
    method: init.method ?? "GET",
    headers,
    body: init.body,
    redirect: "manual",
    ...(init.cf ? { cf: init.cf } : {}),
  } as RequestInit);
}

/** Seals a token with the test keyring; issued now unless told otherwise. */
export async function tokenFor(
  kind: TokenPayload["kind"],
  fields: Partial<Omit<TokenPayload, "kind">> & Pick<TokenPayload, "account_id">,
): Promise<string> {
  return sealToken(await trackingKeyring(env as unknown as Env), {
    kind,
    email_id: "email_019e1972-e87e-7000-bf74-ba09e0ed0d62",
    recipient: "reader@example.com",
    topic: null,
    issued_at: Math.floor(Date.now() / 1000) - 3600,
    ...(kind === "click" ? { url: "https://shop.example.com/", link_name: null } : {}),
    ...fields,
  });
}

/** A token sealed with a key the Worker does not hold. */
export async function forgedToken(kind: TokenPayload["kind"], account_id: string): Promise<string> {
  const keyring = await importTrackingKeys([crypto.getRandomValues(new Uint8Array(32))]);
  return sealToken(keyring, {
    kind,
    account_id,
    email_id: "email_forged",
    recipient: "reader@example.com",
    topic: null,
    issued_at: Math.floor(Date.now() / 1000) - 3600,
    ...(kind === "click" ? { url: "https://evil.example.net/", link_name: null } : {}),
  });
}

/** The token with one character in its ciphertext changed: still base64url, no longer authentic. */
export function tampered(token: string): string {
  const i = Math.floor(token.length / 2);
  return token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
}

export async function eventsOf(account: string, query = ""): Promise<Record<string, any>[]> {
  const token = await mintToken(account, "events:read");
  const res = await call("GET", `/v1/events?limit=100${query ? `&${query}` : ""}`, { token });
  if (res.status !== 200) throw new Error(`GET /v1/events: ${res.status} ${await res.text()}`);
  return (await json(res)).data;
}

export const pathOf = (url: string) => new URL(url).pathname;
