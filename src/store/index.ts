/**
 * The event store: the one owner of every table that grows with mail (events, registrations and the
 * Message-ID map, metric rollups, webhook deliveries, click-burst marks). Every function is handed
 * the D1 database it works on (`db: D1Database`), never `env.DB`: the caller decides which database
 * holds the account (one today; a shard router under SPEC §17). Nothing outside src/store/ writes
 * SQL on these tables or imports their Drizzle objects (test/node/store-owns-sql.test.ts and
 * .dependency-cruiser.cjs refuse it).
 */
export * from "./click-bursts";
export * from "./deliveries";
export * from "./erasure";
export * from "./event-writes";
export * from "./fragments";
export * from "./hour-totals";
export * from "./link-rollups";
export * from "./offset-page";
export * from "./outcomes";
export * from "./purge";
export * from "./rollup-reads";
export * from "./rollup-totals";
export * from "./rollups";
export * from "./scan";
