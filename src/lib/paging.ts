/**
 * The tail of a keyset page. A list reads `limit + 1` rows: the extra one only says that more
 * follow, and the cursor continues after the last row shown.
 */
export function pageOf<R>(
  rows: R[],
  limit: number,
  cursorAfter: (last: R) => string,
): { shown: R[]; has_more: boolean; next_cursor: string | null } {
  const hasMore = rows.length > limit;
  const shown = hasMore ? rows.slice(0, limit) : rows;
  const last = shown[shown.length - 1];
  return { shown, has_more: hasMore, next_cursor: hasMore && last ? cursorAfter(last) : null };
}
