import * as z from "zod";
import type { Env } from "../env";
import { hashId } from "../lib/ids";
import { cursorTime, openCursor, sealCursor } from "../lib/keyset-cursor";
import { pageOf } from "../lib/paging";
import { type Suppression, toSuppression } from "./schema";
import { type ListFilters, type ListPosition, listPage } from "./store";

/** GET /v1/suppressions: a page, newest first, with a keyset cursor bound to its filters. */

export interface ListQuery {
  filters: ListFilters;
  limit: number;
  after: string | null;
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
  const rows = await listPage(env.DB, accountId, query.filters, position, query.limit + 1);
  const { shown, has_more, next_cursor } = pageOf(rows, query.limit, (last) => encodeCursor(hash, last));
  return { object: "list", data: await Promise.all(shown.map(toSuppression)), has_more, next_cursor };
}
