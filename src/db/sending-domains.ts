import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * The sending domains each account has used, so that `GET /v1/events?domain=` can answer
 * `400` for a domain the account never sent from with one key lookup instead of a scan of its
 * events. Written by the consumer with ON CONFLICT DO NOTHING: a row per new domain, not per event.
 */
export const sendingDomains = sqliteTable(
  "sending_domains",
  {
    accountId: text("account_id").notNull(),
    domain: text("domain").notNull(),
    firstSeenAt: integer("first_seen_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.domain] })],
);
