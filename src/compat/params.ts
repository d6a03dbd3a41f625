/**
 * Offset paging (Numonic's `page`, Unosend's `offset`) serves `offset + limit` up to this many rows
 * (SPEC §18): a page reads the rows before it, so a deeper page would read past the row budget.
 */
export const MAX_OFFSET_END = 10_000;
