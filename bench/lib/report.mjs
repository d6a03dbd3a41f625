// Plain-text tables for the terminal.

const fmt = (v) => {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return "-";
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(3)));
  }
  if (typeof v === "boolean") return v ? "yes" : "NO";
  return String(v);
};

/** Renders rows (arrays) under headers, numbers right-aligned. */
export function table(headers, rows) {
  const cells = rows.map((r) => r.map(fmt));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const numeric = headers.map((_, i) =>
    rows.every((r) => typeof r[i] === "number" || r[i] === null || r[i] === undefined),
  );
  const line = (r) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

export const dollars = (v) =>
  v === null || v === undefined ? "-" : v >= 1 ? `$${v.toFixed(2)}` : `$${v.toFixed(4)}`;
