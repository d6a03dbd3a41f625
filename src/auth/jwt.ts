import {
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  jwtVerify,
} from "jose";
import * as z from "zod";
import type { Principal } from "../app-env";
import { config } from "../config";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import { ACCOUNT_ID_PATTERN } from "../lib/params";

export const SCOPES = [
  "events:read",
  "suppressions:read",
  "suppressions:write",
  "send",
  "webhooks:read",
  "webhooks:write",
  "alerts:write",
  "admin",
] as const;
export type Scope = (typeof SCOPES)[number];

export type { Principal };

/** Algorithms a JWKS key may use; HS256 only ever with JWT_SECRET (never from a JWKS). */
const JWKS_ALGORITHMS = ["RS256", "ES256", "EdDSA"];
const CLOCK_TOLERANCE_SECONDS = 60;

const claimsSchema = z.object({
  sub: z.string().regex(ACCOUNT_ID_PATTERN, "sub must be an account id"),
  scope: z.string().optional(),
});

const jwksCache = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

/** The JWKS could not be fetched or read: a dependency failure (503), not a bad token (401). */
class JwksUnavailable extends Error {}

/**
 * jose's fetch, checked: a network error, a non-200 answer or a body that is not JSON is the key
 * server's fault, so it is marked for a 503 rather than reported as a token that failed to verify.
 */
async function fetchJwks(url: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    if (err instanceof Error && err.name === "TimeoutError") throw err; // jose reports JWKSTimeout
    throw new JwksUnavailable("the JWKS could not be fetched", { cause: err });
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new JwksUnavailable(`the JWKS answered ${res.status}`);
  }
  const text = await res.text();
  try {
    JSON.parse(text);
  } catch {
    throw new JwksUnavailable("the JWKS is not JSON");
  }
  return new Response(text, { status: 200, headers: res.headers });
}

function jwksFor(url: string) {
  let set = jwksCache.get(url);
  if (!set) {
    set = createRemoteJWKSet(new URL(url), {
      cacheMaxAge: 10 * 60_000,
      cooldownDuration: 30_000,
      timeoutDuration: 5_000,
      [customFetch]: fetchJwks,
    });
    jwksCache.set(url, set);
  }
  return set;
}

const unauthenticated = (message: string) => new ApiError("authentication_error", message);

/**
 * Verifies an API token (SPEC §3). The algorithm is pinned by the key source: HS256 against
 * JWT_SECRET, or RS256/ES256/EdDSA against the JWKS (jose also requires the header's alg to match
 * the selected JWK's own `alg`). `none` and any algorithm without a configured key are refused
 * before any verification is attempted.
 */
export async function verifyApiToken(env: Env, token: string): Promise<Principal> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw unauthenticated("the bearer token is not a JWT");
  }
  const secret = config(env, "JWT_SECRET");
  const jwksUrl = config(env, "JWT_JWKS_URL");
  const options = {
    issuer: config(env, "JWT_ISSUER") ?? undefined,
    audience: config(env, "JWT_AUDIENCE") ?? undefined,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    // A token without exp would never expire: refused.
    requiredClaims: ["sub", "exp"],
  };
  let payload: JWTPayload;
  try {
    if (alg === "HS256" && secret !== null) {
      ({ payload } = await jwtVerify(token, new TextEncoder().encode(secret), {
        ...options,
        algorithms: ["HS256"],
      }));
    } else if (alg !== undefined && JWKS_ALGORITHMS.includes(alg) && jwksUrl !== null) {
      ({ payload } = await jwtVerify(token, jwksFor(jwksUrl), { ...options, algorithms: JWKS_ALGORITHMS }));
    } else {
      throw unauthenticated(`tokens signed with ${alg ?? "no algorithm"} are not accepted`);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (
      err instanceof JwksUnavailable ||
      err instanceof errors.JWKSTimeout ||
      err instanceof errors.JWKSInvalid
    ) {
      throw new ApiError("unavailable", "the token's key set (JWKS) could not be fetched; retry", {
        cause: err,
        headers: { "Retry-After": "5" },
      });
    }
    throw unauthenticated(describeJoseError(err));
  }
  const claims = claimsSchema.safeParse(payload);
  if (!claims.success)
    throw unauthenticated(claims.error.issues[0]?.message ?? "the token's claims are invalid");
  return {
    accountId: claims.data.sub,
    scopes: new Set((claims.data.scope ?? "").split(" ").filter(Boolean)),
  };
}

function describeJoseError(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "the token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `the token's ${err.claim} claim is invalid`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the token's signature is invalid";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key in the JWKS matches the token";
  if (err instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not allowed";
  return "the token could not be verified";
}
