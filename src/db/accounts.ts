import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Accounts with a plan other than the default. An account with no row has DEFAULT_PLAN (SPEC §11). */
export const accounts = sqliteTable("accounts", {
  id: text("id").primaryKey(),
  plan: text("plan").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});
