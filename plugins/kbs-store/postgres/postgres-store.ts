/**
 * The `postgres` KBS store: one table (`schema.ts`) shared by every KBS replica of a cluster.
 * Every statement is parameterised; keys are validated before any SQL runs, so a key is only ever
 * data. Each method is one statement, so PostgreSQL's row locking gives the atomicity the
 * interface asks for:
 * - `put` is an upsert (`ON CONFLICT DO UPDATE`);
 * - `putIfAbsent` inserts, or replaces only a row whose expiry has passed (`ON CONFLICT DO UPDATE …
 *   WHERE expired`): of concurrent callers, on any replica, exactly one sees a row count of 1;
 * - expired rows are invisible at once and deleted lazily (by `list`, and by writes at most once a
 *   minute).
 *
 * Any failure to reach or use the database is ERR_KBS_STORE_UNAVAILABLE with the driver's error as
 * cause (its message names no password). `close()` ends the pool.
 */
import pg from 'pg'
import {
  assertPutOptions,
  assertStoreKey,
  assertStoreNamespace,
  assertStoreValue,
  type KbsStore,
  type PutOptions,
  type StoreNamespace,
} from '../../../lib/kbs/store.js'
import { CofferError } from '../../../lib/util/errors.js'
import { MIGRATION, MIGRATION_LOCK, TABLE } from './schema.js'
import { parseStoreSettings } from '../../../lib/kbs/store-settings.js'
import { poolConfigFor, PostgresStoreSettings, type PostgresStoreSettingsInput } from './settings.js'

const SWEEP_INTERVAL_MS = 60_000

/**
 * Validates the settings (ERR_CONFIG_INVALID), opens a pool, checks the connection and creates the
 * table if missing (ERR_KBS_STORE_UNAVAILABLE when the database cannot be reached or used).
 */
export async function createPostgresStore(settings: PostgresStoreSettingsInput): Promise<KbsStore> {
  const s = parseStoreSettings(PostgresStoreSettings, settings, 'postgres')
  const pool = new pg.Pool(await poolConfigFor(s))
  // An idle client's connection dying (database restart) is reported here; the pool drops that
  // client and the next query connects anew. Without a listener the process would crash.
  pool.on('error', () => {})
  try {
    await migrate(pool)
  } catch (err) {
    await pool.end().catch(() => {})
    throw unavailable(err)
  }
  return new PostgresStore(pool)
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    for (const statement of MIGRATION) await client.query(statement)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

class PostgresStore implements KbsStore {
  private closed = false
  private lastSweep = 0

  constructor(private readonly pool: pg.Pool) {}

  async get(ns: StoreNamespace, key: string): Promise<Uint8Array | undefined> {
    this.check(ns, key)
    const r = await this.query<{ value: Buffer }>(
      `SELECT value FROM ${TABLE} WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)`,
      [ns, key, Date.now()],
    )
    return r.rows[0]?.value
  }

  async put(ns: StoreNamespace, key: string, value: Uint8Array, options?: PutOptions): Promise<void> {
    this.checkWrite(ns, key, value, options)
    await this.query(
      `INSERT INTO ${TABLE} (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
      [ns, key, Buffer.from(value), options?.expiresAt ?? null],
    )
    await this.maybeSweep()
  }

  async putIfAbsent(
    ns: StoreNamespace,
    key: string,
    value: Uint8Array,
    options?: PutOptions,
  ): Promise<boolean> {
    this.checkWrite(ns, key, value, options)
    const r = await this.query(
      `INSERT INTO ${TABLE} AS t (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
       WHERE t.expires_at IS NOT NULL AND t.expires_at <= $5`,
      [ns, key, Buffer.from(value), options?.expiresAt ?? null, Date.now()],
    )
    await this.maybeSweep()
    return r.rowCount === 1
  }

  async delete(ns: StoreNamespace, key: string): Promise<boolean> {
    this.check(ns, key)
    const r = await this.query<{ live: boolean }>(
      `DELETE FROM ${TABLE} WHERE namespace = $1 AND key = $2
       RETURNING (expires_at IS NULL OR expires_at > $3) AS live`,
      [ns, key, Date.now()],
    )
    return r.rows[0]?.live === true
  }

  async list(ns: StoreNamespace): Promise<string[]> {
    this.assertOpen()
    assertStoreNamespace(ns)
    const now = Date.now()
    await this.query(`DELETE FROM ${TABLE} WHERE namespace = $1 AND expires_at <= $2`, [ns, now])
    const r = await this.query<{ key: string }>(
      `SELECT key FROM ${TABLE} WHERE namespace = $1 AND (expires_at IS NULL OR expires_at > $2)
       ORDER BY key COLLATE "C"`,
      [ns, now],
    )
    return r.rows.map((row) => row.key)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }

  /** Deletes every expired row, at most once per SWEEP_INTERVAL_MS per instance. */
  private async maybeSweep(): Promise<void> {
    const now = Date.now()
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return
    this.lastSweep = now
    await this.query(`DELETE FROM ${TABLE} WHERE expires_at <= $1`, [now])
  }

  private async query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    this.assertOpen()
    try {
      return await this.pool.query<R>(text, values)
    } catch (err) {
      throw unavailable(err)
    }
  }

  private check(ns: StoreNamespace, key: string): void {
    this.assertOpen()
    assertStoreKey(ns, key)
  }

  private checkWrite(ns: StoreNamespace, key: string, value: Uint8Array, options?: PutOptions): void {
    this.check(ns, key)
    assertStoreValue(value)
    assertPutOptions(options)
  }

  private assertOpen(): void {
    if (this.closed) throw new CofferError('ERR_KBS_STORE_UNAVAILABLE', 'kbs store is closed')
  }
}

/** A driver or network failure as ERR_KBS_STORE_UNAVAILABLE (SQLSTATE and message, no password). */
function unavailable(err: unknown): CofferError {
  if (err instanceof CofferError) return err
  const e = err as { code?: unknown; message?: unknown }
  const detail = [typeof e.code === 'string' ? e.code : '', typeof e.message === 'string' ? e.message : '']
    .filter(Boolean)
    .join(' ')
  return new CofferError('ERR_KBS_STORE_UNAVAILABLE', `kbs store database: ${detail || 'unknown error'}`, {
    cause: err,
  })
}
