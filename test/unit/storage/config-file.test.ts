import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_FEATURE_FLAGS,
  parseConfig,
  serializeConfig,
  unwrapMasterKey,
  wrapMasterKey,
} from '../../../lib/storage/config-file.js'

const code = (code: string) => expect.objectContaining({ code })

async function sampleConf(
  flags: readonly string[] = DEFAULT_FEATURE_FLAGS,
  extra: Record<string, unknown> = {},
) {
  const master = randomBytes(32)
  const wrapped = await wrapMasterKey(master, Buffer.from('pw'), 10)
  const doc = JSON.parse(serializeConfig({ creator: 'test', ...wrapped, featureFlags: flags })) as Record<
    string,
    unknown
  >
  return { master, doc: { ...doc, ...extra } }
}

describe('gocryptfs.conf', () => {
  it('is laid out as Go json.MarshalIndent with tabs, in gocryptfs key order', async () => {
    const wrapped = await wrapMasterKey(randomBytes(32), Buffer.from('pw'), 10)
    const text = serializeConfig({ creator: 'coffer', ...wrapped, featureFlags: DEFAULT_FEATURE_FLAGS })
    expect(text).toMatch(
      /^\{\n\t"Creator": "coffer",\n\t"EncryptedKey": "[A-Za-z0-9+/]{86}==",\n\t"ScryptObject": \{\n\t\t"Salt": "[A-Za-z0-9+/]{43}=",\n\t\t"N": 1024,\n\t\t"R": 8,\n\t\t"P": 1,\n\t\t"KeyLen": 32\n\t\},\n\t"Version": 2,\n\t"FeatureFlags": \[\n\t\t"HKDF",\n\t\t"GCMIV128",\n\t\t"DirIV",\n\t\t"EMENames",\n\t\t"LongNames",\n\t\t"Raw64"\n\t\]\n\}\n$/,
    )
  })

  it('unwraps the master key with the right passphrase only', async () => {
    const { master, doc } = await sampleConf()
    const conf = parseConfig(JSON.stringify(doc))
    expect(await unwrapMasterKey(conf, Buffer.from('pw'))).toEqual(master)
    await expect(unwrapMasterKey(conf, Buffer.from('pW'))).rejects.toThrow(
      code('ERR_STORAGE_WRONG_PASSPHRASE'),
    )
    await expect(unwrapMasterKey(conf, Buffer.alloc(0))).rejects.toThrow(code('ERR_STORAGE_PASSPHRASE_EMPTY'))
  })

  it('detects a tampered EncryptedKey as a failed unwrap', async () => {
    const { doc } = await sampleConf()
    const ek = Buffer.from(doc.EncryptedKey as string, 'base64')
    ek[20]! ^= 1
    const conf = parseConfig(JSON.stringify({ ...doc, EncryptedKey: ek.toString('base64') }))
    await expect(unwrapMasterKey(conf, Buffer.from('pw'))).rejects.toThrow(
      code('ERR_STORAGE_WRONG_PASSPHRASE'),
    )
  })

  it('ignores unknown JSON keys, as Go does', async () => {
    const { doc } = await sampleConf(DEFAULT_FEATURE_FLAGS, { Future: 1 })
    expect(parseConfig(JSON.stringify(doc)).featureFlags).toEqual(DEFAULT_FEATURE_FLAGS)
  })

  it('accepts deterministic names (no DirIV) and LongNameMax', async () => {
    const { doc } = await sampleConf(['HKDF', 'GCMIV128', 'EMENames', 'LongNames', 'Raw64'])
    expect(parseConfig(JSON.stringify(doc)).dirIV).toBe(false)
    const lnm = await sampleConf([...DEFAULT_FEATURE_FLAGS, 'LongNameMax'], { LongNameMax: 100 })
    expect(parseConfig(JSON.stringify(lnm.doc)).longNameMax).toBe(100)
  })

  it('refuses unknown flags, unsupported modes and legacy volumes by name', async () => {
    const cases: [string[], string, RegExp][] = [
      [[...DEFAULT_FEATURE_FLAGS, 'Quantum'], 'ERR_STORAGE_CONFIG_INVALID', /unknown feature flag.*Quantum/],
      [[...DEFAULT_FEATURE_FLAGS, 'AESSIV'], 'ERR_STORAGE_FEATURE_UNSUPPORTED', /AESSIV/],
      [
        ['HKDF', 'XChaCha20Poly1305', 'DirIV', 'EMENames', 'LongNames', 'Raw64'],
        'ERR_STORAGE_FEATURE_UNSUPPORTED',
        /XChaCha20Poly1305/,
      ],
      [['HKDF', 'GCMIV128', 'PlaintextNames'], 'ERR_STORAGE_FEATURE_UNSUPPORTED', /PlaintextNames/],
      [['GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64'], 'ERR_STORAGE_FEATURE_UNSUPPORTED', /HKDF/],
      [[...DEFAULT_FEATURE_FLAGS, 'LongNameMax'], 'ERR_STORAGE_CONFIG_INVALID', /LongNameMax/],
    ]
    for (const [flags, c, message] of cases) {
      const { doc } = await sampleConf(flags)
      expect(() => parseConfig(JSON.stringify(doc))).toThrow(code(c))
      expect(() => parseConfig(JSON.stringify(doc))).toThrow(message)
    }
  })

  it('refuses weak or absurd scrypt parameters, other versions and malformed documents', async () => {
    const { doc } = await sampleConf()
    const so = doc.ScryptObject as Record<string, unknown>
    const bad: [unknown, string][] = [
      [{ ...doc, ScryptObject: { ...so, N: 512 } }, 'ERR_STORAGE_CONFIG_INVALID'],
      [{ ...doc, ScryptObject: { ...so, N: 3000 } }, 'ERR_STORAGE_CONFIG_INVALID'],
      [{ ...doc, ScryptObject: { ...so, R: 4 } }, 'ERR_STORAGE_CONFIG_INVALID'],
      [
        { ...doc, ScryptObject: { ...so, Salt: Buffer.alloc(16, 1).toString('base64') } },
        'ERR_STORAGE_CONFIG_INVALID',
      ],
      [{ ...doc, ScryptObject: { ...so, N: 2 ** 30 } }, 'ERR_TOO_LARGE'],
      [{ ...doc, Version: 1 }, 'ERR_STORAGE_CONFIG_INVALID'],
      [{ ...doc, EncryptedKey: Buffer.alloc(48).toString('base64') }, 'ERR_STORAGE_CONFIG_INVALID'],
      [{ ...doc, EncryptedKey: 'not base64!' }, 'ERR_STORAGE_CONFIG_INVALID'],
      [{ ...doc, FeatureFlags: 'HKDF' }, 'ERR_STORAGE_CONFIG_INVALID'],
      [[], 'ERR_STORAGE_CONFIG_INVALID'],
    ]
    for (const [d, c] of bad) expect(() => parseConfig(JSON.stringify(d))).toThrow(code(c))
    expect(() => parseConfig('{"Creator":')).toThrow(code('ERR_STORAGE_CONFIG_INVALID'))
  })
})
