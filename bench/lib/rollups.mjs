// Rolls up one account's bulk-loaded events through the bench Worker, a UTC day per request.

/**
 * Clears the account's rollups, then rebuilds them a day at a time. Each request stays short: a
 * request that keeps the local runtime busy for many seconds makes its keep-alive timers fire late
 * and it closes the client's next connection (see BENCHMARKS.md, "The 1,000,000-event reset").
 * Answers the Worker's own time in ms, summed over the requests, and the statements' D1 meta.
 */
export async function rebuildRollups(client, account) {
  const q = `account=${encodeURIComponent(account)}`;
  const { data: cleared } = await client.call(`/__bench/rebuild-rollups?${q}&step=clear`, {
    method: "POST",
    idempotent: true,
  });
  let ms = cleared.ms;
  const meta = [...cleared.meta];
  for (const day of cleared.days) {
    const { data } = await client.call(`/__bench/rebuild-rollups?${q}&day=${day}`, {
      method: "POST",
      idempotent: true,
    });
    ms += data.ms;
    meta.push(...data.meta);
  }
  return { ms, meta, days: cleared.days.length };
}
