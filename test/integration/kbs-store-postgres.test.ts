/**
 * The `postgres` KBS store against a real Debian PostgreSQL started by the test (test/helpers/
 * postgres.ts): the conformance suite, sealed over postgres, two replicas on one database, the
 * idempotent migration, settings (URL, password file or variable), and outages (stopped server,
 * wrong password, closed port), each a clear ERR_KBS_STORE_UNAVAILABLE.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { KbsStore } from '../../lib/kbs/store.js'
import {
  createPostgresStore,
  plugin as postgresPlugin,
  TABLE,
} from '../../plugins/kbs-store/postgres/index.js'
import {
  createSealedStore,
  generateMasterKeyFile,
  rawAesKeyring,
} from '../../plugins/kbs-store/sealed/index.js'
import { startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { expectCode, kbsStoreSuite } from '../suites/kbs-store.js'

let db: TestPostgres
let keyDir: string
beforeAll(async () => {
  db = await startPostgres()
  keyDir = await mkdtemp(join(tmpdir(), 'coffer-kbs-pg-key-'))
  await generateMasterKeyFile(join(keyDir, 'master.key'))
}, 120_000)
afterAll(async () => {
  await db?.stop()
  if (keyDir) await rm(keyDir, { recursive: true, force: true })
})

const dropDatabase = (name: string) => db.sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)

kbsStoreSuite('postgres', async () => {
  const database = await db.createDatabase()
  const store = await createPostgresStore(db.settings(database))
  return {
    store,
    open: () => createPostgresStore(db.settings(database)),
    cleanup: async () => {
      await store.close()
      await dropDatabase(database)
    },
  }
})

async function openSealedPg(database: string): Promise<KbsStore> {
  return createSealedStore({
    inner: await createPostgresStore(db.settings(database)),
    keyring: await rawAesKeyring(join(keyDir, 'master.key')),
  })
}

kbsStoreSuite('sealed over postgres', async () => {
  const database = await db.createDatabase()
  const store = await openSealedPg(database)
  return {
    store,
    open: () => openSealedPg(database),
    cleanup: async () => {
      await store.close()
      await dropDatabase(database)
    },
  }
})

describe('postgres store: replicas, migration, settings', () => {
  it("two replicas on one database see each other's writes, deletes and expiry", async () => {
    const database = await db.createDatabase()
    const [a, b] = [
      await createPostgresStore(db.settings(database)),
      await createPostgresStore(db.settings(database)),
    ]
    await a.put('resource', 'default/key/one', Buffer.from('from a'))
    expect(Buffer.from((await b.get('resource', 'default/key/one'))!).toString()).toBe('from a')
    await b.put('resource', 'default/key/one', Buffer.from('from b'))
    expect(Buffer.from((await a.get('resource', 'default/key/one'))!).toString()).toBe('from b')
    await a.put('session', 'sess', Buffer.from('s'), { expiresAt: Date.now() + 400 })
    expect(await b.list('session')).toEqual(['sess'])
    await new Promise((r) => setTimeout(r, 500))
    expect(await b.get('session', 'sess')).toBeUndefined()
    expect(await b.putIfAbsent('session', 'sess', Buffer.from('again'))).toBe(true)
    expect(await a.putIfAbsent('session', 'sess', Buffer.from('late'))).toBe(false)
    expect(await b.delete('resource', 'default/key/one')).toBe(true)
    expect(await a.get('resource', 'default/key/one')).toBeUndefined()
    // Racing replicas over many keys: each key has exactly one winner.
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        Promise.all([a, b].map((s) => s.putIfAbsent('session', `nonce-${i}`, Buffer.from('n')))),
      ),
    )
    for (const r of results) expect(r.filter(Boolean)).toHaveLength(1)
    await a.close()
    await b.close()
    await dropDatabase(database)
  })

  it('the migration is idempotent and safe when replicas start together; data survives a reopen', async () => {
    const database = await db.createDatabase()
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => createPostgresStore(db.settings(database))),
    )
    await stores[0]!.put('policy', 'resource-policy', Buffer.from('allow'))
    for (const s of stores) await s.close()
    const again = await createPostgresStore(db.settings(database))
    expect(Buffer.from((await again.get('policy', 'resource-policy'))!).toString()).toBe('allow')
    await again.close()
    const tables = await db.sql(`SELECT tablename FROM pg_tables WHERE tablename = $1`, [TABLE], database)
    expect(tables).toHaveLength(1)
    await dropDatabase(database)
  })

  it('stores rows as (namespace, key, value bytea, expires_at); the sealed store writes no plaintext', async () => {
    const database = await db.createDatabase()
    const plain = await createPostgresStore(db.settings(database))
    const evil = Buffer.from("'); DROP TABLE coffer_kbs_store; --\u0000\xff")
    await plain.put('resource', 'a/b/c', evil, { expiresAt: 4_102_444_800_000 })
    const rows = await db.sql<{ namespace: string; key: string; value: Buffer; expires_at: string }>(
      `SELECT namespace, key, value, expires_at FROM ${TABLE}`,
      [],
      database,
    )
    expect(rows).toEqual([{ namespace: 'resource', key: 'a/b/c', value: evil, expires_at: '4102444800000' }])
    await plain.close()
    const sealed = await openSealedPg(database)
    const SECRET = 'PLAINTEXT-MUST-NOT-REACH-THE-DATABASE'
    await sealed.put('resource', 'x/y/z', Buffer.from(SECRET))
    const [row] = await db.sql<{ value: Buffer }>(
      `SELECT value FROM ${TABLE} WHERE key = 'x/y/z'`,
      [],
      database,
    )
    expect(row!.value.includes(Buffer.from(SECRET))).toBe(false)
    expect(Buffer.from((await sealed.get('resource', 'x/y/z'))!).toString()).toBe(SECRET)
    // A row moved to another key in SQL is caught by the encryption context.
    await db.sql(`UPDATE ${TABLE} SET key = 'x/y/moved' WHERE key = 'x/y/z'`, [], database)
    await expectCode(sealed.get('resource', 'x/y/moved'), 'ERR_KBS_STORE_CORRUPT')
    await sealed.close()
    await dropDatabase(database)
  })

  it('takes a postgres:// URL, and the password from a file or a named variable', async () => {
    const database = await db.createDatabase()
    const viaUrl = await createPostgresStore({
      connectionString: db.url(database),
      passwordFile: db.passwordFile,
    })
    await viaUrl.put('policy', 'p', Buffer.from('1'))
    await viaUrl.close()
    const name = `COFFER_TEST_PG_PASSWORD_${process.pid}`
    process.env[name] = db.password
    try {
      const viaEnv = await createPostgresStore({
        ...db.settings(database),
        passwordFile: undefined,
        passwordEnv: name,
      })
      expect(await viaEnv.list('policy')).toEqual(['p'])
      await viaEnv.close()
    } finally {
      delete process.env[name]
    }
    await expectCode(
      createPostgresStore({ ...db.settings(database), passwordFile: undefined, passwordEnv: name }),
      'ERR_CONFIG_INVALID',
    )
    await dropDatabase(database)
  })

  it('bad settings are ERR_CONFIG_INVALID', async () => {
    const bad: unknown[] = [
      {},
      { connectionString: 'mysql://x' },
      { host: '127.0.0.1', port: 0 },
      { host: '127.0.0.1', poolSize: 0 },
      { host: '127.0.0.1', password: 'inline passwords are not accepted' },
      { host: '127.0.0.1', passwordFile: '/a', passwordEnv: 'B' },
      { host: '127.0.0.1', passwordEnv: 'NOT-A-NAME' },
      { host: '127.0.0.1', passwordFile: '/nonexistent/password' },
      null,
    ]
    for (const settings of bad) await expectCode(postgresPlugin.init(settings), 'ERR_CONFIG_INVALID')
  })

  it('close() ends the pool: the server sees no connection left', async () => {
    const database = await db.createDatabase()
    const store = await createPostgresStore({ ...db.settings(database), poolSize: 3 })
    await Promise.all(Array.from({ length: 6 }, (_, i) => store.put('resource', `k${i}`, Buffer.from('v'))))
    const count = async () =>
      Number(
        (
          await db.sql<{ n: string }>(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'coffer-kbs'`,
            [database],
          )
        )[0]!.n,
      )
    expect(await count()).toBeGreaterThan(0)
    await store.close()
    await store.close()
    for (let i = 0; i < 50 && (await count()) > 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(await count()).toBe(0)
    await dropDatabase(database)
  })
})

describe('postgres store outages: ERR_KBS_STORE_UNAVAILABLE, clearly', () => {
  it('a closed port fails fast at open', async () => {
    const probe = createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const port = (probe.address() as AddressInfo).port
    await new Promise((r) => probe.close(r))
    const err = await expectCode(
      createPostgresStore({ host: '127.0.0.1', port, user: 'x', database: 'x', connectTimeoutMs: 2000 }),
      'ERR_KBS_STORE_UNAVAILABLE',
    )
    expect(err.message).toMatch(/ECONNREFUSED/)
  })

  it('a wrong password names the failure, never the password', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-pgpw-'))
    const wrong = 'wrong-password-1234567890'
    await writeFile(join(dir, 'pw'), wrong)
    const err = await expectCode(
      createPostgresStore({ ...db.settings(), passwordFile: join(dir, 'pw') }),
      'ERR_KBS_STORE_UNAVAILABLE',
    )
    expect(err.message).toMatch(/28P01|password authentication failed/)
    expect(err.message).not.toContain(wrong)
    expect(err.message).not.toContain(db.password)
    await rm(dir, { recursive: true, force: true })
  })

  it('a database that goes away is UNAVAILABLE; the same store recovers when it is back', async () => {
    const database = await db.createDatabase()
    const store = await createPostgresStore({ ...db.settings(database), connectTimeoutMs: 2000 })
    await store.put('resource', 'a/b/c', Buffer.from('before'))
    await db.stopServer()
    try {
      await expectCode(store.get('resource', 'a/b/c'), 'ERR_KBS_STORE_UNAVAILABLE')
      await expectCode(store.put('resource', 'a/b/c', Buffer.from('x')), 'ERR_KBS_STORE_UNAVAILABLE')
      await expectCode(store.list('resource'), 'ERR_KBS_STORE_UNAVAILABLE')
    } finally {
      await db.startServer()
    }
    expect(Buffer.from((await store.get('resource', 'a/b/c'))!).toString()).toBe('before')
    await store.close()
    await dropDatabase(database)
  }, 60_000)
})
