/**
 * The `sealed` KBS store over `fs`: the conformance suite, then tampering with the backing files
 * (flipped bytes, swapped and moved entries, a pushed-back expiry, another master key), the master
 * key file rules, and the KMS keyring's configuration and failure reporting (no KMS is reachable
 * here: a closed port and a fake endpoint that answers with an AWS error).
 */
import { KmsKeyringNode, RawAesKeyringNode } from '@aws-crypto/client-node'
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import type { KbsStore } from '../../../lib/kbs/store.js'
import { createFsStore } from '../../../plugins/kbs-store/fs/fs-store.js'
import {
  createSealedStore,
  generateMasterKeyFile,
  kmsKeyring,
  plugin as sealedPlugin,
  rawAesKeyring,
  sealingKeyringFor,
  SealedStoreSettings,
} from '../../../plugins/kbs-store/sealed/index.js'
import { expectCode, kbsStoreSuite } from '../../suites/kbs-store.js'

async function openSealed(root: string, keyFile: string): Promise<KbsStore> {
  return createSealedStore({ inner: await createFsStore({ root }), keyring: await rawAesKeyring(keyFile) })
}

kbsStoreSuite('sealed over fs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-sealed-'))
  const keyFile = join(dir, 'master.key')
  await generateMasterKeyFile(keyFile)
  const store = await openSealed(join(dir, 'store'), keyFile)
  return {
    store,
    open: () => openSealed(join(dir, 'store'), keyFile),
    cleanup: async () => {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

/** Every regular file under `dir`, recursively. */
async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await allFiles(p)))
    else if (e.isFile()) out.push(p)
  }
  return out
}

describe('sealed store against tampering', () => {
  let dir: string
  let root: string
  let keyFile: string
  let store: KbsStore
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-sealed-'))
    root = join(dir, 'store')
    keyFile = join(dir, 'master.key')
    await generateMasterKeyFile(keyFile)
    store = await openSealed(root, keyFile)
  })
  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  const SECRET = 'TOP-SECRET-RESOURCE-0123456789'

  it('the plaintext never appears in the backing files', async () => {
    await store.put('resource', 'default/key/tag', Buffer.from(SECRET.repeat(100)))
    await store.put('session', 'abc', Buffer.from(SECRET), { expiresAt: Date.now() + 60_000 })
    const files = await allFiles(root)
    expect(files.length).toBe(2)
    for (const f of files) {
      const content = await readFile(f)
      expect(content.includes(Buffer.from(SECRET))).toBe(false)
      expect(content.includes(Buffer.from(SECRET.slice(0, 12)))).toBe(false)
    }
  })

  it('a flipped byte anywhere in the sealed value is ERR_KBS_STORE_CORRUPT with one fixed message', async () => {
    await store.put('resource', 'default/key/tag', Buffer.from(SECRET))
    const file = join(root, 'resource/3/default/key/tag')
    const original = await readFile(file)
    const HEADER = 21 // fs entry header (plugins/kbs-store/fs/entry-format.ts)
    const offsets = [
      HEADER,
      HEADER + 1,
      HEADER + 40,
      HEADER + 100,
      HEADER + 200,
      original.length - 40,
      original.length - 1,
    ]
    for (const off of offsets) {
      const tampered = Buffer.from(original)
      tampered[off]! ^= 0x01
      await writeFile(file, tampered)
      const err = await expectCode(store.get('resource', 'default/key/tag'), 'ERR_KBS_STORE_CORRUPT')
      expect(err.message, `offset ${off}`).toMatch(
        /failed authentication|not a store entry|sealed for another key/,
      )
      expect(err.message).not.toContain(SECRET)
    }
    await writeFile(file, original)
    expect(Buffer.from((await store.get('resource', 'default/key/tag'))!).toString()).toBe(SECRET)
  })

  it('values swapped between keys, or moved to another namespace, are ERR_KBS_STORE_CORRUPT', async () => {
    await store.put('resource', 'repo/key/a', Buffer.from('value of a'))
    await store.put('resource', 'repo/key/b', Buffer.from('value of b'))
    await store.put('policy', 'resource-policy', Buffer.from('allow'))
    const a = join(root, 'resource/3/repo/key/a')
    const b = join(root, 'resource/3/repo/key/b')
    const [bytesA, bytesB] = [await readFile(a), await readFile(b)]
    await writeFile(a, bytesB)
    await writeFile(b, bytesA)
    const err = await expectCode(store.get('resource', 'repo/key/a'), 'ERR_KBS_STORE_CORRUPT')
    expect(err.message).toContain('sealed for another key')
    await expectCode(store.get('resource', 'repo/key/b'), 'ERR_KBS_STORE_CORRUPT')
    // The same key in another namespace: the policy's bytes under resource/1/resource-policy.
    await store.put('resource', 'resource-policy', Buffer.from('placeholder'))
    await writeFile(
      join(root, 'resource/1/resource-policy'),
      await readFile(join(root, 'policy/1/resource-policy')),
    )
    await expectCode(store.get('resource', 'resource-policy'), 'ERR_KBS_STORE_CORRUPT')
  })

  it('an expiry pushed back in the backing store does not revive a sealed entry', async () => {
    await store.put('session', 'sess', Buffer.from('token'), { expiresAt: Date.now() + 300 })
    const file = join(root, 'session/1/sess')
    const bytes = await readFile(file)
    bytes.writeBigInt64BE(BigInt(Date.now() + 3_600_000), 5)
    await writeFile(file, bytes)
    await new Promise((r) => setTimeout(r, 400))
    expect(await store.get('session', 'sess')).toBeUndefined()
  })

  it('another master key cannot read the store: ERR_KBS_STORE_CORRUPT', async () => {
    await store.put('resource', 'default/key/tag', Buffer.from(SECRET))
    const otherKey = join(dir, 'other.key')
    await generateMasterKeyFile(otherKey)
    const other = await openSealed(root, otherKey)
    await expectCode(other.get('resource', 'default/key/tag'), 'ERR_KBS_STORE_CORRUPT')
    await other.close()
  })

  it('an unsealed value planted in the backing store is ERR_KBS_STORE_CORRUPT', async () => {
    const plain = await createFsStore({ root })
    await plain.put('resource', 'planted/by/attacker', Buffer.from('{"not":"sealed"}'))
    await plain.close()
    await expectCode(store.get('resource', 'planted/by/attacker'), 'ERR_KBS_STORE_CORRUPT')
  })
})

describe('sealed store master key file', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-key-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('generateMasterKeyFile writes 32 random bytes, mode 0600, and never overwrites', async () => {
    const a = join(dir, 'a.key')
    const b = join(dir, 'b.key')
    await generateMasterKeyFile(a)
    await generateMasterKeyFile(b)
    expect((await stat(a)).mode & 0o777).toBe(0o600)
    expect((await readFile(a)).length).toBe(32)
    expect((await readFile(a)).equals(await readFile(b))).toBe(false)
    const before = await readFile(a)
    await expectCode(generateMasterKeyFile(a), 'ERR_KBS_STORE_MASTER_KEY_INVALID')
    expect((await readFile(a)).equals(before)).toBe(true)
  })

  it('rejects a missing, short, long, group-readable or non-file key: ERR_KBS_STORE_MASTER_KEY_INVALID', async () => {
    const cases: [string, Buffer | 'dir' | 'missing', number][] = [
      ['missing.key', 'missing', 0o600],
      ['short.key', Buffer.alloc(31, 1), 0o600],
      ['long.key', Buffer.alloc(33, 1), 0o600],
      ['hex.key', Buffer.from('ab'.repeat(32)), 0o600],
      ['open.key', Buffer.alloc(32, 1), 0o640],
      ['dir.key', 'dir', 0o700],
    ]
    for (const [name, content, mode] of cases) {
      const p = join(dir, name)
      if (content === 'dir') await (await import('node:fs/promises')).mkdir(p, { mode })
      else if (content !== 'missing') {
        await writeFile(p, content)
        await chmod(p, mode)
      }
      const err = await expectCode(rawAesKeyring(p), 'ERR_KBS_STORE_MASTER_KEY_INVALID')
      expect(err.message, name).toContain(p)
    }
  })

  it('the raw AES keyring uses the fixed provider namespace and key name', async () => {
    const p = join(dir, 'k.key')
    await generateMasterKeyFile(p)
    const k = await rawAesKeyring(p)
    expect(k.kind).toBe('raw-aes')
    expect(k.keyring).toBeInstanceOf(RawAesKeyringNode)
    expect((k.keyring as unknown as { keyNamespace: string }).keyNamespace).toBe('coffer')
    expect((k.keyring as unknown as { keyName: string }).keyName).toBe('kbs-store-master-key')
  })
})

describe('sealed store settings and the KMS keyring', () => {
  const ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'
  let dir: string
  let fakeKms: Server
  let fakeKmsUrl: string
  let closedUrl: string
  const kmsRequests: string[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-kms-'))
    // Answers every KMS call as AWS does when the key policy denies it.
    fakeKms = createServer((req, res) => {
      kmsRequests.push(String(req.headers['x-amz-target']))
      req.resume()
      req.on('end', () => {
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' })
        res.end(
          JSON.stringify({
            __type: 'AccessDeniedException',
            message: 'User is not authorized to use the key',
          }),
        )
      })
    })
    await new Promise<void>((r) => fakeKms.listen(0, '127.0.0.1', r))
    fakeKmsUrl = `http://127.0.0.1:${(fakeKms.address() as AddressInfo).port}`
    const probe = createNetServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    closedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`
    await new Promise((r) => probe.close(r))
  })
  afterAll(async () => {
    await new Promise((r) => fakeKms.close(r))
    await rm(dir, { recursive: true, force: true })
  })
  beforeEach(() => {
    // Static fake credentials: the SDK must not wander off to instance metadata or profiles.
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAIOSFODNN7EXAMPLE')
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY')
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true')
  })
  afterEach(() => {
    vi.unstubAllEnvs()
  })

  const parse = (s: unknown) => SealedStoreSettings.parse(s)
  const inner = { settings: { root: '/unused' } }

  it('settings naming a KMS key ARN select the KMS keyring; a master key file selects raw AES', async () => {
    const k = await sealingKeyringFor(parse({ inner, kms: { keyArn: ARN } }))
    expect(k.kind).toBe('kms')
    expect(k.keyring).toBeInstanceOf(KmsKeyringNode)
    const p = join(dir, 'm.key')
    await generateMasterKeyFile(p)
    expect((await sealingKeyringFor(parse({ inner, masterKeyFile: p }))).kind).toBe('raw-aes')
    expect(parse({ inner, masterKeyFile: p }).inner.store).toBe('fs')
  })

  it('bad settings are ERR_CONFIG_INVALID, and the inner store is closed', async () => {
    const bad: unknown[] = [
      {},
      { inner },
      { inner, kms: { keyArn: 'not-an-arn' } },
      { inner, kms: { keyArn: `${ARN}\nx` } },
      { inner, kms: { keyArn: ARN, endpoint: 'file:///etc/passwd' } },
      { inner, kms: { keyArn: ARN }, masterKeyFile: '/k' },
      { inner: { store: 'sealed', settings: {} }, masterKeyFile: '/k' },
      { inner, masterKeyFile: '/k', extra: true },
      'a string',
    ]
    for (const settings of bad) {
      let closed = 0
      const innerStore = { close: async () => void closed++ } as unknown as KbsStore
      await expectCode(sealedPlugin.init({ settings, inner: innerStore }), 'ERR_CONFIG_INVALID')
      expect(closed, JSON.stringify(settings)).toBe(1)
    }
  })

  it('an unreachable KMS endpoint is ERR_KBS_STORE_UNAVAILABLE naming the KMS failure', async () => {
    const store = createSealedStore({
      inner: await createFsStore({ root: join(dir, 'closed') }),
      keyring: kmsKeyring({ keyArn: ARN, endpoint: closedUrl }),
    })
    const err = await expectCode(
      store.put('resource', 'a/b/c', Buffer.from('x')),
      'ERR_KBS_STORE_UNAVAILABLE',
    )
    expect(err.message).toMatch(/^AWS KMS call failed: /)
    expect(err.message).toMatch(/ECONNREFUSED/)
    expect(await store.list('resource')).toEqual([])
    await store.close()
  }, 30_000)

  it('a KMS error answer is ERR_KBS_STORE_UNAVAILABLE with its AWS error name, nothing stored', async () => {
    kmsRequests.length = 0
    const store = createSealedStore({
      inner: await createFsStore({ root: join(dir, 'denied') }),
      keyring: kmsKeyring({ keyArn: ARN, endpoint: fakeKmsUrl }),
    })
    const err = await expectCode(
      store.put('resource', 'a/b/c', Buffer.from('x')),
      'ERR_KBS_STORE_UNAVAILABLE',
    )
    expect(err.message).toContain('AccessDeniedException')
    expect(err.message).toContain('not authorized')
    expect(kmsRequests).toContain('TrentService.GenerateDataKey')
    expect(await store.list('resource')).toEqual([])
    await store.close()
  })
})
