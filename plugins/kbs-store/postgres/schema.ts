/**
 * The `postgres` store's one table, created on open if missing. The migration runs in a transaction
 * under a transaction-scoped advisory lock: two replicas starting together would otherwise race in
 * `CREATE TABLE IF NOT EXISTS` (PostgreSQL can fail one of them with a unique violation on its
 * catalog), and a later migration step will need the same serialisation.
 *
 * `expires_at` is epoch milliseconds as the KBS computed it (bigint), compared with the caller's
 * clock rather than the database's, so every backend expires entries by the same clock.
 */
export const TABLE = 'coffer_kbs_store'

/** Advisory lock key for migrations: "coffer" in ASCII. */
export const MIGRATION_LOCK = '109330110506354'

export const MIGRATION: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ${TABLE} (
     namespace text NOT NULL,
     key text NOT NULL,
     value bytea NOT NULL,
     expires_at bigint,
     PRIMARY KEY (namespace, key)
   )`,
  `CREATE INDEX IF NOT EXISTS ${TABLE}_expires_at ON ${TABLE} (expires_at) WHERE expires_at IS NOT NULL`,
]
