import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Registered messages (POST /v1/messages, /v1/messages/instrument): the correlation dimensions that
 * the queue consumer copies onto every event of the message. WITHOUT ROWID on (account_id, email_id):
 * one row written per registration, and the consumer's enrichment join is a primary-key lookup.
 */
export const messages = sqliteTable(
  "messages",
  {
    accountId: text("account_id").notNull(),
    emailId: text("email_id").notNull(),
    messageId: text("message_id"),
    fromAddress: text("from_address"),
    fromDomain: text("from_domain"),
    subject: text("subject"),
    topic: text("topic"),
    campaign: text("campaign"),
    templateId: text("template_id"),
    tags: text("tags").notNull().default("[]"),
    registeredAt: integer("registered_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.emailId] })],
);
