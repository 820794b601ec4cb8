/**
 * plugins/kbs-store/postgres/settings.ts without a database: settings → pg pool configuration, the
 * password's sources, and its round trip through a connection URL (pg lets every field parsed from
 * the URL override the separate ones, so the password has to travel inside it).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'pg-connection-string'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { poolConfigFor, PostgresStoreSettings } from '../../../plugins/kbs-store/postgres/settings.js'
import { expectCode } from '../../suites/kbs-store.js'

describe('postgres store settings', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-pgset-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('maps fields and defaults (pool size 10, timeouts) to the pool configuration', async () => {
    const config = await poolConfigFor(
      PostgresStoreSettings.parse({ host: 'db', port: 5433, user: 'kbs', database: 'k' }),
    )
    expect(config).toMatchObject({
      host: 'db',
      port: 5433,
      user: 'kbs',
      database: 'k',
      max: 10,
      connectionTimeoutMillis: 10_000,
      query_timeout: 30_000,
      statement_timeout: 30_000,
      application_name: 'coffer-kbs',
    })
    expect(config.password).toBeUndefined()
  })

  it('reads the password from a file (dropping one trailing newline) or a named variable', async () => {
    await writeFile(join(dir, 'pw'), 'secret with spaces \n')
    const fromFile = await poolConfigFor(
      PostgresStoreSettings.parse({ host: 'db', passwordFile: join(dir, 'pw') }),
    )
    expect(fromFile.password).toBe('secret with spaces ')
    const fromEnv = await poolConfigFor(PostgresStoreSettings.parse({ host: 'db', passwordEnv: 'PGX_PW' }), {
      PGX_PW: 'from-env',
    })
    expect(fromEnv.password).toBe('from-env')
    await expectCode(
      poolConfigFor(PostgresStoreSettings.parse({ host: 'db', passwordEnv: 'PGX_PW' }), {}),
      'ERR_CONFIG_INVALID',
    )
    await writeFile(join(dir, 'big'), Buffer.alloc(5000, 0x61))
    await expectCode(
      poolConfigFor(PostgresStoreSettings.parse({ host: 'db', passwordFile: join(dir, 'big') })),
      'ERR_CONFIG_INVALID',
    )
  })

  it('puts a file password into the connection URL so that pg parses back exactly that password', async () => {
    for (const pw of ['simple', 'p@ss:/w rd%', 'a%41b', '%', 'ü€', 'a+b=c&d?e#f[]', 'quote\'"back\\slash']) {
      await writeFile(join(dir, 'pw'), pw)
      const config = await poolConfigFor(
        PostgresStoreSettings.parse({
          connectionString: 'postgres://kbs@db.internal:5432/kbs?application_name=x',
          passwordFile: join(dir, 'pw'),
        }),
      )
      const parsed = parse(config.connectionString!)
      expect(parsed.password, pw).toBe(pw)
      expect(parsed.user).toBe('kbs')
      expect(parsed.host).toBe('db.internal')
      expect(parsed.database).toBe('kbs')
    }
  })
})
