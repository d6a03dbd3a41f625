import * as z from "zod";
import type { Env } from "../env";
import { cursorTime, openCursor, sealCursor } from "../lib/cursor";
import { validationError } from "../lib/errors";
import { hashId } from "../lib/ids";
import { SUPPRESSION_REASONS } from "../pipeline/messages";
import { parseTopic } from "./params";
import { type Suppression, toSuppression } from "./schema";
import { type ListFilters, type ListPosition, listPage } from "./store";

/** GET /v1/suppressions: parameters → a page, newest first, with a keyset cursor bound to its filters. */

export const LIST_PARAMS = ["limit", "after", "reason", "topic", "account_id"] as const;
export type ListParams = Partial<Record<(typeof LIST_PARAMS)[number], string>>;
export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 1000;

export interface ListQuery {
  filters: ListFilters;
  limit: number;
  after: string | null;
}

export function parseListQuery(params: ListParams): ListQuery {
  const limit = params.limit === undefined ? DEFAULT_LIMIT : Number(params.limit);
  if (params.limit !== undefined && (!/^\d{1,4}$/.test(params.limit) || limit < 1 || limit > MAX_LIMIT)) {
    throw validationError("limit", `limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  if (params.reason !== undefined && !(SUPPRESSION_REASONS as readonly string[]).includes(params.reason)) {
    throw validationError("reason", `reason must be one of ${SUPPRESSION_REASONS.join(", ")}`);
  }
  if (params.after !== undefined && (params.after === "" || params.after.length > 1024)) {
    throw validationError("after", "after is not a cursor returned by this API");
  }
  return {
    filters: {
      reason: params.reason ?? null,
      topic: params.topic === undefined ? null : parseTopic("topic", params.topic),
    },
    limit,
    after: params.after ?? null,
  };
}

const fingerprint = async (accountId: string, filters: ListFilters) =>
  (await hashId(accountId, `reason=${filters.reason ?? ""}`, `topic=${filters.topic ?? ""}`)).slice(0, 16);

const listCursorSchema = z.object({ t: cursorTime, e: z.string(), p: z.string() });

export function encodeCursor(hash: string, position: ListPosition): string {
  return sealCursor(hash, { t: position.suppressedAt, e: position.email, p: position.topic });
}

export function decodeCursor(cursor: string, hash: string): ListPosition {
  const body = openCursor(
    cursor,
    hash,
    listCursorSchema,
    "after belongs to a listing with other filters; repeat reason and topic unchanged",
  );
  return { suppressedAt: body.t, email: body.e, topic: body.p };
}

export interface SuppressionPage {
  object: "list";
  data: Suppression[];
  has_more: boolean;
  next_cursor: string | null;
}

export async function listSuppressions(
  env: Env,
  accountId: string,
  query: ListQuery,
): Promise<SuppressionPage> {
  const hash = await fingerprint(accountId, query.filters);
  const position = query.after === null ? null : decodeCursor(query.after, hash);
  const rows = await listPage(env, accountId, query.filters, position, query.limit + 1);
  const hasMore = rows.length > query.limit;
  const shown = hasMore ? rows.slice(0, query.limit) : rows;
  const last = shown[shown.length - 1];
  return {
    object: "list",
    data: await Promise.all(shown.map(toSuppression)),
    has_more: hasMore,
    next_cursor: hasMore && last ? encodeCursor(hash, last) : null,
  };
}
