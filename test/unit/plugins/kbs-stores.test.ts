/**
 * plugins/kbs-stores.ts: opening a store by name from configuration, `sealed` over its inner store,
 * and the errors for unknown stores and bad settings. (Each store's behaviour is in
 * test/unit/kbs-store/ and test/integration/kbs-store-postgres.test.ts.)
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { generateMasterKeyFile } from '../../../plugins/kbs-store/sealed/index.js'
import { createKbsStore, kbsStoreNames } from '../../../plugins/kbs-stores.js'
import { expectCode } from '../../suites/kbs-store.js'

describe('createKbsStore', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-stores-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('knows fs, sealed and postgres', () => {
    expect(kbsStoreNames()).toEqual(['fs', 'sealed', 'postgres'])
  })

  it('opens fs by name, and by default', async () => {
    for (const config of [
      { store: 'fs', settings: { root: join(dir, 'a') } },
      { settings: { root: join(dir, 'b') } },
    ]) {
      const store = await createKbsStore(config)
      await store.put('resource', 'default/key/k', Buffer.from('v'))
      expect(await store.list('resource')).toEqual(['default/key/k'])
      await store.close()
    }
    expect(await readdir(join(dir, 'b', 'resource', '3'))).toEqual(['default'])
  })

  it('opens sealed over fs: the fs files hold ciphertext, the sealed store the plaintext', async () => {
    const keyFile = join(dir, 'master.key')
    await generateMasterKeyFile(keyFile)
    const root = join(dir, 'sealed')
    const store = await createKbsStore({
      store: 'sealed',
      settings: { masterKeyFile: keyFile, inner: { store: 'fs', settings: { root } } },
    })
    await store.put('resource', 'default/key/k', Buffer.from('PLAINTEXT-VALUE'))
    expect(Buffer.from((await store.get('resource', 'default/key/k'))!).toString()).toBe('PLAINTEXT-VALUE')
    const onDisk = await readFile(join(root, 'resource/3/default/key/k'))
    expect(onDisk.includes(Buffer.from('PLAINTEXT-VALUE'))).toBe(false)
    await store.close()
    // The plain fs store over the same root sees the ciphertext, not the value.
    const plain = await createKbsStore({ store: 'fs', settings: { root } })
    expect(
      Buffer.from((await plain.get('resource', 'default/key/k'))!).includes(Buffer.from('PLAINTEXT')),
    ).toBe(false)
    await plain.close()
  })

  it('an unknown store is ERR_PLUGIN_NOT_FOUND naming the known ones', async () => {
    const err = await expectCode(createKbsStore({ store: 'redis', settings: {} }), 'ERR_PLUGIN_NOT_FOUND')
    expect(err.message).toContain('fs, sealed, postgres')
  })

  it('bad configuration is ERR_CONFIG_INVALID', async () => {
    const bad: unknown[] = [
      null,
      'fs',
      { store: 'fs' },
      { store: 'fs', settings: { root: '' } },
      { store: 'fs', settings: { root: dir, extra: 1 } },
      { store: 'fs', settings: { root: dir }, other: 1 },
      { store: 'sealed', settings: { inner: { store: 'fs', settings: { root: dir } } } },
      { store: 'sealed', settings: { masterKeyFile: '/k', inner: { store: 'sealed', settings: {} } } },
      { store: 'sealed', settings: { masterKeyFile: '/k', inner: { store: 'fs', settings: {} } } },
    ]
    for (const config of bad) await expectCode(createKbsStore(config), 'ERR_CONFIG_INVALID')
  })

  it('a sealed store whose key file is missing fails with the key error and closes its inner store', async () => {
    await expectCode(
      createKbsStore({
        store: 'sealed',
        settings: { masterKeyFile: join(dir, 'missing.key'), inner: { settings: { root: join(dir, 's') } } },
      }),
      'ERR_KBS_STORE_MASTER_KEY_INVALID',
    )
  })
})
