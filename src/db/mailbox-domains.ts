import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * The mailbox provider learned for a recipient domain that is not a consumer domain (SPEC §15,
 * src/mailbox/providers.ts): a company's domain hosted at Google Workspace or Microsoft 365, told by
 * what SES reported of the receiving server on a delivery or bounce.
 *
 * Global per domain, not per account: where a domain's mail is hosted is a fact about the domain,
 * the reports come only through verified SNS, and every account's metrics then attribute the same
 * domain the same way. Metrics read it at query time (joined on the rollups' recipient_domain), so
 * the whole history of a domain is attributed once it is learned, and the rollups carry no extra
 * column.
 *
 * Cost: WITHOUT ROWID on `domain`, no secondary index. The consumer upserts only deliveries and
 * bounces whose report names a provider, and writes only when the domain is new or moved
 * (`DO UPDATE … WHERE provider <> excluded.provider`): 0 rows written per event in the steady state,
 * 1 row per newly learned domain; one primary-key read per such event. About 40 bytes a domain.
 */
export const mailboxDomains = sqliteTable("mailbox_domains", {
  domain: text("domain").primaryKey(),
  provider: text("provider").notNull(),
  learnedAt: integer("learned_at").notNull(),
});
