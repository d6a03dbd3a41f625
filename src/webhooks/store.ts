import { and, eq, inArray, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { config } from "../config";
import { type WebhookEndpointRow, webhookEndpoints } from "../db/webhooks";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import { isSealed, openSecret, sealSecret } from "../lib/secret-box";
import { type Subscription, subscriptionOf } from "./match";
import type { PatchBody, WebhookFilters } from "./schema";
import { newEndpointId, newSecret } from "./signing";

/**
 * Webhook endpoints in D1, and a short per-isolate cache of each account's endpoints for the
 * fan-out and the delivery consumer. SPEC §14: a change governs every delivery attempted 10 s
 * after it answered. Entries live 5 s, and the routes drop their account's entry in the isolate
 * that made the change, so another isolate is at most 5 s behind.
 */

export const MAX_ENDPOINTS_PER_ACCOUNT = 20;
export const ENDPOINT_CACHE_TTL_MS = 5_000;
const ROTATION_OVERLAP_MS = 24 * 3600_000;

export interface CachedEndpoint {
  row: WebhookEndpointRow;
  sub: Subscription;
}

const cache = new Map<string, { at: number; endpoints: CachedEndpoint[] }>();

export function forgetAccount(accountId: string): void {
  cache.delete(accountId);
}

/** Each account's endpoints (enabled or not), from the cache or one D1 read for all the misses. */
export async function endpointsOf(
  env: Env,
  accountIds: Iterable<string>,
  now = Date.now(),
): Promise<Map<string, CachedEndpoint[]>> {
  const out = new Map<string, CachedEndpoint[]>();
  const missing: string[] = [];
  for (const id of new Set(accountIds)) {
    const hit = cache.get(id);
    if (hit && now - hit.at < ENDPOINT_CACHE_TTL_MS && now >= hit.at) out.set(id, hit.endpoints);
    else missing.push(id);
  }
  for (let i = 0; i < missing.length; i += 90) {
    const chunk = missing.slice(i, i + 90);
    const rows = await drizzle(env.DB)
      .select()
      .from(webhookEndpoints)
      .where(inArray(webhookEndpoints.accountId, chunk));
    if (cache.size > 10_000) cache.clear();
    for (const id of chunk) {
      const endpoints = rows
        .filter((r) => r.accountId === id)
        .map((row) => ({ row, sub: subscriptionOf(row) }));
      cache.set(id, { at: now, endpoints });
      out.set(id, endpoints);
    }
  }
  return out;
}

export async function listEndpoints(env: Env, accountId: string): Promise<WebhookEndpointRow[]> {
  const rows = await drizzle(env.DB)
    .select()
    .from(webhookEndpoints)
    .where(eq(webhookEndpoints.accountId, accountId));
  return rows.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
}

export async function getEndpoint(
  env: Env,
  accountId: string,
  id: string,
): Promise<WebhookEndpointRow | null> {
  const row = await drizzle(env.DB)
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.accountId, accountId), eq(webhookEndpoints.id, id)))
    .get();
  return row ?? null;
}

export interface NewEndpoint {
  url: string;
  description: string | null;
  eventTypes: string[] | null;
  filters: WebhookFilters;
}

/** The additional data a row's sealed secrets are bound to. */
const secretContext = (accountId: string, id: string) => `webhook_endpoint:${accountId}:${id}`;

/** Seals a signing secret for its row under SECRETS_KEY (500 configuration_error naming it when missing). */
export function sealEndpointSecret(env: Env, accountId: string, id: string, secret: string): Promise<string> {
  return sealSecret(config(env, "SECRETS_KEY"), secretContext(accountId, id), secret);
}

/**
 * Creates an endpoint unless the account has 20 already (checked in the same statement). The row
 * stores the secret sealed; the returned row carries it in plaintext, for the one answer that shows it.
 */
export async function createEndpoint(
  env: Env,
  accountId: string,
  input: NewEndpoint,
  now: number,
): Promise<WebhookEndpointRow> {
  const row: WebhookEndpointRow = {
    accountId,
    id: newEndpointId(),
    url: input.url,
    description: input.description,
    eventTypes: input.eventTypes === null ? null : JSON.stringify(input.eventTypes),
    filters: JSON.stringify(input.filters),
    status: "enabled",
    disabledReason: null,
    secret: newSecret(),
    previousSecret: null,
    previousExpiresAt: null,
    failingSince: null,
    createdAt: now,
    updatedAt: now,
  };
  const sealed = await sealEndpointSecret(env, accountId, row.id, row.secret);
  const { meta } = await env.DB.prepare(
    `INSERT INTO webhook_endpoints (account_id, id, url, description, event_types, filters, status, secret, created_at, updated_at)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'enabled', ?7, ?8, ?8
     WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE account_id = ?1) < ?9`,
  )
    .bind(
      accountId,
      row.id,
      row.url,
      row.description,
      row.eventTypes,
      row.filters,
      sealed,
      now,
      MAX_ENDPOINTS_PER_ACCOUNT,
    )
    .run();
  if (meta.changes === 0) {
    // No parameter is at fault: the account is full.
    throw new ApiError(
      "validation_error",
      `an account has at most ${MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints; delete one first`,
    );
  }
  forgetAccount(accountId);
  return row;
}

export type EndpointChanges = Omit<PatchBody, "url"> & { url?: string };

/** Applies a PATCH; null when there is no such endpoint. Re-enabling clears the reason and the failure streak. */
export async function updateEndpoint(
  env: Env,
  accountId: string,
  id: string,
  changes: EndpointChanges,
  now: number,
): Promise<WebhookEndpointRow | null> {
  const set: Partial<WebhookEndpointRow> = { updatedAt: now };
  if (changes.url !== undefined) set.url = changes.url;
  if (changes.description !== undefined) set.description = changes.description;
  if (changes.event_types !== undefined)
    set.eventTypes = changes.event_types === null ? null : JSON.stringify(changes.event_types);
  if (changes.filters !== undefined) set.filters = JSON.stringify(changes.filters);
  if (changes.status === "enabled") {
    set.status = "enabled";
    set.disabledReason = null;
    set.failingSince = null;
  }
  const where = and(eq(webhookEndpoints.accountId, accountId), eq(webhookEndpoints.id, id));
  const db = drizzle(env.DB);
  if (changes.status === "disabled") {
    // Disabling keeps the reason of an endpoint that is already disabled (gone, failing).
    set.status = "disabled";
    await db
      .update(webhookEndpoints)
      .set({ ...set, disabledReason: sql`COALESCE(${webhookEndpoints.disabledReason}, 'manual')` })
      .where(where);
  } else {
    await db.update(webhookEndpoints).set(set).where(where);
  }
  forgetAccount(accountId);
  return getEndpoint(env, accountId, id);
}

export async function deleteEndpoint(env: Env, accountId: string, id: string): Promise<boolean> {
  const { meta } = await env.DB.prepare("DELETE FROM webhook_endpoints WHERE account_id = ? AND id = ?")
    .bind(accountId, id)
    .run();
  forgetAccount(accountId);
  return meta.changes > 0;
}

/**
 * A new secret; the current one keeps signing for 24 hours beside it. Both are written sealed (a
 * plaintext row from before encryption is sealed here). The update is conditional on the secret
 * read, so two concurrent rotations cannot both keep the same previous secret. The returned row
 * carries the new secret in plaintext.
 */
export async function rotateSecret(
  env: Env,
  accountId: string,
  id: string,
  now: number,
): Promise<WebhookEndpointRow | null> {
  const key = config(env, "SECRETS_KEY");
  const context = secretContext(accountId, id);
  for (let round = 0; round < 3; round++) {
    const current = await getEndpoint(env, accountId, id);
    if (current === null) return null;
    const secret = newSecret();
    const previous = await sealSecret(key, context, await openSecret(key, context, current.secret));
    const row = await env.DB.prepare(
      `UPDATE webhook_endpoints SET previous_secret = ?3, previous_expires_at = ?4, secret = ?5, updated_at = ?6
       WHERE account_id = ?1 AND id = ?2 AND secret = ?7 RETURNING id`,
    )
      .bind(
        accountId,
        id,
        previous,
        now + ROTATION_OVERLAP_MS,
        await sealSecret(key, context, secret),
        now,
        current.secret,
      )
      .first();
    forgetAccount(accountId);
    if (row !== null) {
      const updated = await getEndpoint(env, accountId, id);
      return updated === null ? null : { ...updated, secret };
    }
  }
  throw new ApiError("unavailable", "the endpoint's secret changed concurrently; retry", {
    headers: { "Retry-After": "1" },
  });
}

/** The secrets an attempt at `now` signs with, in plaintext: the current one, and the previous one during its overlap. */
export async function signingSecrets(env: Env, row: WebhookEndpointRow, now: number): Promise<string[]> {
  const stored =
    row.previousSecret !== null && row.previousExpiresAt !== null && row.previousExpiresAt > now
      ? [row.secret, row.previousSecret]
      : [row.secret];
  // A plaintext row (written before encryption) needs no key, so deliveries never stop on it.
  if (stored.every((s) => !isSealed(s))) return stored;
  const key = config(env, "SECRETS_KEY");
  const context = secretContext(row.accountId, row.id);
  return Promise.all(stored.map((s) => openSecret(key, context, s)));
}

/**
 * Seals the signing secrets of rows written before encryption (plaintext `whsec_…`), at most
 * `limit` rows per call; the scheduled work calls it until none is left. Each update is
 * conditional on the plaintext it read.
 */
export async function sealPlaintextSecrets(env: Env, limit = 200): Promise<{ sealed: number }> {
  if (env.SECRETS_KEY === undefined || env.SECRETS_KEY === "") return { sealed: 0 };
  const { results } = await env.DB.prepare(
    `SELECT account_id, id, secret, previous_secret FROM webhook_endpoints
     WHERE secret NOT LIKE 'enc1.%' OR (previous_secret IS NOT NULL AND previous_secret NOT LIKE 'enc1.%') LIMIT ?1`,
  )
    .bind(limit)
    .all<{ account_id: string; id: string; secret: string; previous_secret: string | null }>();
  if (results.length === 0) return { sealed: 0 };
  const statements: D1PreparedStatement[] = [];
  for (const r of results) {
    const key = config(env, "SECRETS_KEY");
    const context = secretContext(r.account_id, r.id);
    const seal = (v: string) => (isSealed(v) ? Promise.resolve(v) : sealSecret(key, context, v));
    statements.push(
      env.DB.prepare(
        `UPDATE webhook_endpoints SET secret = ?3, previous_secret = ?4
         WHERE account_id = ?1 AND id = ?2 AND secret = ?5 AND previous_secret IS ?6`,
      ).bind(
        r.account_id,
        r.id,
        await seal(r.secret),
        r.previous_secret === null ? null : await seal(r.previous_secret),
        r.secret,
        r.previous_secret,
      ),
    );
    forgetAccount(r.account_id);
  }
  await env.DB.batch(statements);
  return { sealed: results.length };
}
