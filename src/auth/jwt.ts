import { createRemoteJWKSet, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from "jose";
import * as z from "zod";
import type { Principal } from "../app-env";
import { config } from "../config";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import { ACCOUNT_ID_PATTERN } from "../lib/params";

export const SCOPES = ["events:read", "suppressions:read", "suppressions:write", "send", "admin"] as const;
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

function jwksFor(url: string) {
  let set = jwksCache.get(url);
  if (!set) {
    set = createRemoteJWKSet(new URL(url), {
      cacheMaxAge: 10 * 60_000,
      cooldownDuration: 30_000,
      timeoutDuration: 5_000,
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
