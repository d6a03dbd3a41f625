/**
 * Suppressions written from rows the caller resolved (the consumer, for a striped account whose
 * suppressions live on another shard than the event, SPEC §17). First entry wins, as everywhere.
 */
export interface SuppressionWrite {
  account_id: string;
  email: string;
  /** As stored: '' for every topic. */
  topic: string;
  reason: string;
  email_id: string | null;
  suppressed_at: number;
}

export function insertSuppressions(db: D1Database, rows: SuppressionWrite[]): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at)
       SELECT value->>'account_id', value->>'email', value->>'topic', value->>'reason', value->>'email_id',
              value->>'suppressed_at'
         FROM json_each(?1) WHERE true
       ON CONFLICT DO NOTHING`,
    )
    .bind(JSON.stringify(rows));
}
