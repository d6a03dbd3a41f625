import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { inject } from "vitest";
import type { Env } from "../../src/env";
import type { EventRecord } from "../../src/events/record";
import { type DeliveryOptions, handleWebhookBatch } from "../../src/webhooks/deliver";
import type { WebhookMessage } from "../../src/webhooks/messages";
import { call, consume, event, eventMessage, json, mintToken } from "../helpers";

/** Shared helpers of the webhook tests: the local receiver, endpoints, and the delivery consumer. */

const port = inject("receiverPort");
const receiver = `http://127.0.0.1:${port}`;
let hookSeq = 0;

/** A fresh receiver path per call, so tests never see each other's requests. */
export function hookName(): string {
  hookSeq += 1;
  return `h${Date.now().toString(36)}${hookSeq}${Math.random().toString(36).slice(2, 6)}`;
}
export const hookUrl = (name: string) => `${receiver}/hooks/${name}`;

export interface ReceivedCall {
  headers: Record<string, string>;
  body: string;
  at: number;
}

export async function received(name: string): Promise<ReceivedCall[]> {
  return (await fetch(`${receiver}/calls/${name}`)).json();
}

/** Scripts the receiver's next answers for a name (afterwards: 200). */
export async function script(
  name: string,
  answers: { status: number; delayMs?: number; location?: string }[],
) {
  await fetch(`${receiver}/script/${name}`, { method: "PUT", body: JSON.stringify(answers) });
}

export async function tokensFor(account: string) {
  return {
    read: await mintToken(account, "webhooks:read"),
    write: await mintToken(account, "webhooks:write"),
  };
}

export interface CreatedEndpoint {
  id: string;
  secret: string;
  url: string;
  [key: string]: unknown;
}

export async function createEndpoint(
  account: string,
  body: Record<string, unknown>,
): Promise<CreatedEndpoint> {
  const token = await mintToken(account, "webhooks:write");
  const res = await call("POST", "/v1/webhooks", { token, body });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${await res.text()}`);
  return json<CreatedEndpoint>(res);
}

/** Stores events through the events consumer (before any endpoint exists, nothing is fanned out). */
export async function storeEvents(events: EventRecord[]): Promise<void> {
  const result = await consume(events.map((e) => eventMessage(e)));
  if (result.explicitAcks.length !== events.length) throw new Error("events not stored");
}

export function deliverMessage(
  endpointId: string,
  e: EventRecord,
  extra: Partial<WebhookMessage> = {},
): WebhookMessage {
  return {
    type: "deliver",
    account_id: e.account_id,
    endpoint_id: endpointId,
    event_id: e.id,
    occurred_at: e.occurred_at,
    ...extra,
  };
}

let batchSeq = 0;
/** Runs the delivery consumer on messages, as Queues would deliver them, with the clock given. */
export async function deliver(
  messages: WebhookMessage[],
  options: DeliveryOptions & { attempts?: number; timestamp?: Date; env?: Env } = {},
) {
  batchSeq += 1;
  const batch = createMessageBatch<unknown>(
    "mailtrail-webhooks",
    messages.map((body, i) => ({
      id: `wh-${batchSeq}-${i}`,
      timestamp: options.timestamp ?? new Date(),
      attempts: options.attempts ?? 1,
      body,
    })),
  );
  // The pool's queue result leaves out each retry's delay: record it on the way through.
  const delays = new Map<string, number | undefined>();
  // When each message was settled (acknowledged or retried), on the real clock.
  const settledAt = new Map<string, number>();
  for (const message of batch.messages) {
    const retry = message.retry.bind(message);
    message.retry = (opts?: QueueRetryOptions) => {
      delays.set(message.id, opts?.delaySeconds);
      settledAt.set(message.id, Date.now());
      retry(opts);
    };
    const ack = message.ack.bind(message);
    message.ack = () => {
      settledAt.set(message.id, Date.now());
      ack();
    };
  }
  const ctx = createExecutionContext();
  await handleWebhookBatch(batch, options.env ?? env, options);
  const result = await getQueueResult(batch, ctx);
  return {
    ...result,
    settledAt,
    retryMessages: result.retryMessages.map((r: { msgId: string }) => ({
      ...r,
      delaySeconds: delays.get(r.msgId),
    })),
  };
}

export async function deliveries(account: string, endpointId: string, query = "") {
  const token = await mintToken(account, "webhooks:read");
  return json(await call("GET", `/v1/webhooks/${endpointId}/deliveries${query}`, { token }));
}

/** Verifies a received call with the standardwebhooks library, as a customer's receiver would. */
export function verify(
  secret: string,
  c: ReceivedCall,
): { type: string; timestamp: string; data: Record<string, unknown> } {
  return new Webhook(secret).verify(c.body, c.headers) as never;
}

export { event };
