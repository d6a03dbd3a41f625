import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newApp } from "../../src/app";
import type { Env } from "../../src/env";
import { sealPlaintextSecrets } from "../../src/webhooks/store";
import { call, freshAccount, json, mintToken } from "../helpers";
import {
  createEndpoint,
  deliver,
  deliverMessage,
  event,
  hookName,
  hookUrl,
  received,
  storeEvents,
  verify,
} from "./support";

/** SPEC §14/§2: signing secrets (the current one and the rotation's previous one) are stored sealed under SECRETS_KEY. */

const stored = (id: string) =>
  env.DB.prepare("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = ?")
    .bind(id)
    .first<{ secret: string; previous_secret: string | null }>();

describe("webhook signing secrets at rest", () => {
  it("stores the secret and the rotated-out secret sealed, and signs with both in plaintext", async () => {
    const account = freshAccount();
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name) });
    const row = await stored(ep.id);
    expect(row?.secret).toMatch(/^enc1\./);
    expect(row?.secret).not.toContain(ep.secret.slice(6));

    const token = await mintToken(account, "webhooks:write");
    const rotated = await json(await call("POST", `/v1/webhooks/${ep.id}/secret`, { token }));
    expect(rotated.secret).toMatch(/^whsec_/);
    const after = await stored(ep.id);
    expect(after?.secret).toMatch(/^enc1\./);
    expect(after?.previous_secret).toMatch(/^enc1\./);
    for (const plain of [ep.secret, rotated.secret as string]) {
      expect(JSON.stringify(after)).not.toContain(plain.slice(6));
    }

    const e = event({ account_id: account });
    await storeEvents([e]);
    await deliver([deliverMessage(ep.id, e)]);
    const [c] = await received(name);
    // Each secret verifies on its own: the receiver switches without losing a delivery.
    expect(verify(ep.secret, c!).data.id).toBe(e.id);
    expect(verify(rotated.secret as string, c!).data.id).toBe(e.id);
  });

  it("a sealed secret copied into another endpoint's row does not open there", async () => {
    const account = freshAccount();
    const a = await createEndpoint(account, { url: hookUrl(hookName()) });
    const name = hookName();
    const b = await createEndpoint(account, { url: hookUrl(name) });
    const sealedA = (await stored(a.id))?.secret;
    await env.DB.prepare("UPDATE webhook_endpoints SET secret = ? WHERE id = ?").bind(sealedA, b.id).run();
    const e = event({ account_id: account });
    await storeEvents([e]);
    // The endpoint cache (5 s) still holds b's own row in this isolate; an uncached read sees the swap.
    const { forgetAccount } = await import("../../src/webhooks/store");
    forgetAccount(account);
    const result = await deliver([deliverMessage(b.id, e)]);
    expect(await received(name)).toEqual([]);
    expect(result.explicitAcks).toEqual([]);
  });

  it("reads plaintext rows written before encryption, and seals them (scheduled work and rotation)", async () => {
    const account = freshAccount();
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name) });
    const legacy = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    await env.DB.prepare("UPDATE webhook_endpoints SET secret = ? WHERE id = ?").bind(legacy, ep.id).run();
    const { forgetAccount } = await import("../../src/webhooks/store");
    forgetAccount(account);
    const e = event({ account_id: account });
    await storeEvents([e]);
    await deliver([deliverMessage(ep.id, e)]);
    const [c] = await received(name);
    expect(verify(legacy, c!).data.id).toBe(e.id);

    let sealed = 0;
    for (let i = 0; i < 100 && (await stored(ep.id))?.secret === legacy; i++) {
      sealed += (await sealPlaintextSecrets(env)).sealed;
    }
    expect(sealed).toBeGreaterThan(0);
    expect((await stored(ep.id))?.secret).toMatch(/^enc1\./);

    // Rotating a plaintext row keeps the old secret signing, sealed.
    await env.DB.prepare("UPDATE webhook_endpoints SET secret = ? WHERE id = ?").bind(legacy, ep.id).run();
    const token = await mintToken(account, "webhooks:write");
    const rotated = await json(await call("POST", `/v1/webhooks/${ep.id}/secret`, { token }));
    const row = await stored(ep.id);
    expect(row?.previous_secret).toMatch(/^enc1\./);
    const e2 = event({ account_id: account });
    await storeEvents([e2]);
    await deliver([deliverMessage(ep.id, e2)]);
    const calls = await received(name);
    expect(verify(legacy, calls[1]!).data.id).toBe(e2.id);
    expect(verify(rotated.secret as string, calls[1]!).data.id).toBe(e2.id);
  });

  it("without SECRETS_KEY, creating, rotating and replaying answer 500 configuration_error naming it", async () => {
    const account = freshAccount();
    const ep = await createEndpoint(account, { url: hookUrl(hookName()) });
    const token = await mintToken(account, "webhooks:write");
    for (const value of [undefined, "c2hvcnQ"]) {
      await expectConfigurationErrors({ ...env, SECRETS_KEY: value } as Env, ep.id, token);
    }
    // Nothing was created.
    const list = await json(
      await call("GET", "/v1/webhooks", { token: await mintToken(account, "webhooks:read") }),
    );
    expect(list.data).toHaveLength(1);
  });
});

async function expectConfigurationErrors(bare: Env, endpointId: string, token: string) {
  const ep = { id: endpointId };
  const app = newApp();
  const send = (method: string, path: string, body?: unknown) =>
    app.fetch(
      new Request(`https://mailtrail.test${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
      bare,
      createExecutionContext(),
    );
  for (const res of [
    await send("POST", "/v1/webhooks", { url: hookUrl(hookName()) }),
    await send("POST", `/v1/webhooks/${ep.id}/secret`),
    await send("POST", `/v1/webhooks/${ep.id}/replay`, { event_ids: ["evt_x"] }),
  ]) {
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe("configuration_error");
    expect(body.error.message).toContain("SECRETS_KEY");
    expect(body.error.message).not.toContain("c2hvcnQ");
  }
}
