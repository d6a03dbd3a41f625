/**
 * Finding 8 through `wrangler dev` itself: a body refused with 413 while the client is still sending
 * it (chunked, no Content-Length) used to leave the dev server unable to answer the next request
 * (it hung, or answered `503 "Your worker restarted mid-request"`). No browser needed.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev } from "./wrangler-dev";

/** A body of unknown length: fetch sends it chunked. */
function chunked(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(16 * 1024).fill(0x78);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
}

describe("wrangler dev after a refused streamed body", () => {
  let origin = "";
  let dev: DevServer | undefined;

  beforeAll(async () => {
    dev = await startWranglerDev({ JWT_SECRET: randomBytes(36).toString("base64url") });
    origin = dev.origin;
  }, 90_000);

  afterAll(async () => {
    await dev?.stop();
  });

  it("answers 413 and then keeps answering", async () => {
    for (let round = 0; round < 3; round++) {
      const refused = await fetch(`${origin}/webhooks/ses`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: chunked(300 * 1024),
        duplex: "half",
        signal: AbortSignal.timeout(15_000),
      } as RequestInit);
      expect(refused.status).toBe(413);
      expect(((await refused.json()) as { error: { type: string } }).error.type).toBe("payload_too_large");
      const next = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(10_000) });
      expect(next.status, `round ${round}`).toBe(200);
      expect(await next.json()).toEqual({ ok: true });
    }
  });
});
