import { execFile } from 'node:child_process'
import { constants, createPrivateKey, publicEncrypt, randomBytes, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DecryptConfig, EncryptConfig } from '../../../../lib/crypt/keywrap.js'
import { CofferError } from '../../../../lib/util/errors.js'
import {
  decodeEnvelope,
  encodeEnvelope,
  parseCertificate,
  readGcmParameters,
} from '../../../../plugins/keywrap/pkcs7/cms.js'
import { plugin } from '../../../../plugins/keywrap/pkcs7/index.js'
import {
  createPkcs7KeyWrapper,
  MAX_PKCS7_BYTES,
  PKCS7_ANNOTATION,
} from '../../../../plugins/keywrap/pkcs7/pkcs7-keywrap.js'
import { rsaDecryptPkcs1v15, unpadPkcs1v15 } from '../../../../plugins/keywrap/pkcs7/pkcs1v15.js'
import { expectDecryptFailed, keyWrapperSuite, samplePrivateOptions } from '../../../suites/keywrap.js'

const execFileP = promisify(execFile)

interface Identity {
  key: Buffer
  cert: Buffer
}

/** Certificates made once per file by `openssl req -x509`, as users make them (spec §1.7). */
// The promise, not the path, is memoized: concurrent first calls must share one directory.
let dir: Promise<string> | undefined
const workDir = (): Promise<string> => (dir ??= mkdtemp(join(tmpdir(), 'coffer-pkcs7-unit-')))
const made = new Map<string, Promise<Identity>>()
function identity(name: string, newkey: string[] = ['-newkey', 'rsa:2048']): Promise<Identity> {
  let p = made.get(name)
  if (!p) {
    p = (async () => {
      const d = await workDir()
      const [key, cert] = [join(d, `${name}.key`), join(d, `${name}.crt`)]
      await execFileP(
        'openssl',
        ['req', '-x509', ...newkey, '-nodes', '-subj', `/CN=${name}`, '-days', '2'].concat([
          '-keyout',
          key,
          '-out',
          cert,
        ]),
      )
      return { key: await readFile(key), cert: await readFile(cert) }
    })()
    made.set(name, p)
  }
  return p
}
afterAll(async () => {
  if (dir) await rm(await dir, { recursive: true, force: true })
})

const ec = (...ids: Identity[]): EncryptConfig => ({ x509s: ids.map((i) => i.cert) })
const dc = (...ids: Identity[]): DecryptConfig => ({
  privkeys: ids.map((i) => i.key),
  privkeysPasswords: ids.map(() => Buffer.alloc(0)),
  x509s: ids.map((i) => i.cert),
})

/** Copies of `der` with one byte flipped at each offset. */
const flipAt = (der: Uint8Array, ...offsets: number[]): Buffer[] =>
  offsets.map((at) => {
    const copy = Buffer.from(der)
    copy[at]! ^= 0x01
    return copy
  })

/** Ciphertext, tag, wrapped key and GCM nonce, each changed once. */
function tamperPkcs7(wrapped: Uint8Array): Uint8Array[] {
  const der = Buffer.from(wrapped)
  const env = decodeEnvelope(der)!
  const keyAt = der.indexOf(env.recipients[0]!.encryptedKey)
  const nonceAt = der.indexOf(readGcmParameters(env.parameters!)!.nonce)
  return flipAt(der, der.length - 17 - 50, der.length - 1, keyAt + 100, nonceAt + 3)
}

keyWrapperSuite('pkcs7, RSA 2048', async () => {
  const [a, b, other] = await Promise.all([identity('a'), identity('b'), identity('other')])
  return {
    wrapper: createPkcs7KeyWrapper(),
    recipients: [a, b].map((id) => ({ ec: ec(id), dc: dc(id) })),
    unrelated: dc(other),
    tamper: tamperPkcs7,
  }
})

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    return err instanceof CofferError ? err.code : `not a CofferError: ${String(err)}`
  }
}

describe('pkcs7 key wrapper: registration and key checks', () => {
  const w = createPkcs7KeyWrapper()
  const k = samplePrivateOptions()

  it('registers as keywrap.v1/pkcs7 and writes org.opencontainers.image.enc.keys.pkcs7', () => {
    expect(plugin.point).toBe('keywrap.v1')
    expect(plugin.name).toBe('pkcs7')
    expect(w.name).toBe('pkcs7')
    expect(w.annotationId).toBe(PKCS7_ANNOTATION)
    expect(PKCS7_ANNOTATION).toBe('org.opencontainers.image.enc.keys.pkcs7')
  })

  it('noPossibleKeys needs both a private key and a certificate', async () => {
    const a = await identity('a')
    expect(w.noPossibleKeys({ privkeys: [a.key] })).toBe(true)
    expect(w.noPossibleKeys({ x509s: [a.cert] })).toBe(true)
    expect(w.noPossibleKeys(dc(a))).toBe(false)
  })

  it('takes DER certificates and keys as well as PEM', async () => {
    const a = await identity('a')
    const certDer = new X509Certificate(a.cert).raw
    const keyDer = createPrivateKey(a.key).export({ format: 'der', type: 'pkcs8' })
    const wrapped = await w.wrapKeys({ x509s: [certDer] }, k)
    expect(Buffer.from(await w.unwrapKey({ privkeys: [keyDer], x509s: [certDer] }, wrapped))).toEqual(k)
  })

  it('refuses recipients that are no certificate, not RSA, or RSA below 2048 bits', async () => {
    const ecId = await identity('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'])
    const small = await identity('small', ['-newkey', 'rsa:1024'])
    expect(await codeOf(w.wrapKeys({ x509s: [Buffer.from('not a certificate')] }, k))).toBe(
      'ERR_CRYPT_KEY_INVALID',
    )
    expect(await codeOf(w.wrapKeys(ec(ecId), k))).toBe('ERR_CRYPT_UNSUPPORTED')
    expect(await codeOf(w.wrapKeys(ec(small), k))).toBe('ERR_CRYPT_KEY_INVALID')
    expect(await codeOf(w.wrapKeys({}, k))).toBe('ERR_CRYPT_NO_KEY')
  })

  it('a decryption certificate that does not parse is ERR_CRYPT_KEY_INVALID', async () => {
    const a = await identity('a')
    const wrapped = await w.wrapKeys(ec(a), k)
    const bad = { ...dc(a), x509s: [Buffer.from('nope')] }
    expect(await codeOf(w.unwrapKey(bad, wrapped))).toBe('ERR_CRYPT_KEY_INVALID')
  })

  it('refuses an annotation over MAX_PKCS7_BYTES before parsing, and garbage with the fixed failure', async () => {
    const a = await identity('a')
    expect(await codeOf(w.unwrapKey(dc(a), Buffer.alloc(MAX_PKCS7_BYTES + 1)))).toBe('ERR_TOO_LARGE')
    await expectDecryptFailed(w.unwrapKey(dc(a), Buffer.from('not DER at all')))
    await expectDecryptFailed(w.unwrapKey(dc(a), Buffer.alloc(0)))
    const wrapped = Buffer.from(await w.wrapKeys(ec(a), k))
    await expectDecryptFailed(w.unwrapKey(dc(a), wrapped.subarray(0, wrapped.length - 1)))
  })

  it('honours an aborted signal', async () => {
    const a = await identity('a')
    const signal = AbortSignal.abort()
    await expect(w.wrapKeys(ec(a), k, { signal })).rejects.toBeDefined()
    await expect(w.unwrapKey(dc(a), Buffer.alloc(1), { signal })).rejects.toBeDefined()
  })
})

describe('pkcs7 GCM parameters (cms.ts)', () => {
  const nonce = Buffer.from('000102030405060708090a0b', 'hex')
  it("reads go.mozilla.org/pkcs7's shape", () => {
    const go = Buffer.concat([Buffer.from('10133011840c', 'hex'), nonce, Buffer.from('020110', 'hex')])
    expect(readGcmParameters(go)).toEqual({ nonce, tagLength: 16 })
  })
  it("reads RFC 5084's GCMParameters, with and without the ICV length", () => {
    const rfc = Buffer.concat([Buffer.from('3011040c', 'hex'), nonce, Buffer.from('020110', 'hex')])
    expect(readGcmParameters(rfc)).toEqual({ nonce, tagLength: 16 })
    const short = Buffer.concat([Buffer.from('300e040c', 'hex'), nonce])
    expect(readGcmParameters(short)).toEqual({ nonce, tagLength: 12 })
  })
  it('refuses anything else', () => {
    expect(readGcmParameters(Buffer.from('0500', 'hex'))).toBeUndefined()
    expect(readGcmParameters(Buffer.concat([Buffer.from('040c', 'hex'), nonce]))).toBeUndefined()
    expect(readGcmParameters(Buffer.from('10133011840c00', 'hex'))).toBeUndefined()
  })
})

describe('RSAES-PKCS1-v1_5 unpadding with implicit rejection (pkcs1v15.ts)', () => {
  const K = 256
  const M = Buffer.from('00112233445566778899aabbccddeeff', 'hex')
  const fallback = Buffer.alloc(16, 0x5a)
  /** 00 02 PS 00 M with nonzero PS. */
  function encoded(message: Uint8Array = M): Buffer {
    const em = Buffer.alloc(K)
    em[1] = 0x02
    const ps = em.subarray(2, K - message.length - 1)
    for (let i = 0; i < ps.length; i++) ps[i] = 1 + (i % 255)
    Buffer.from(message).copy(em, K - message.length)
    return em
  }

  it('returns M for a valid block', () => {
    expect(unpadPkcs1v15(encoded(), 16, fallback)).toEqual(M)
  })

  it.each([
    ['first byte not 00', (em: Buffer) => void (em[0] = 0x01)],
    ['block type 01, not 02', (em: Buffer) => void (em[1] = 0x01)],
    ['no 00 separator before M', (em: Buffer) => void (em[K - 17] = 0x07)],
    ['a 00 inside PS (M would be longer)', (em: Buffer) => void (em[20] = 0x00)],
    ['PS shorter than 8 bytes', (em: Buffer) => void (em[5] = 0x00)],
  ])('returns the fallback, not an error, for %s', (_why, damage) => {
    const em = encoded()
    damage(em)
    expect(unpadPkcs1v15(em, 16, fallback)).toEqual(fallback)
  })

  it('returns the fallback for a valid block whose message has another length', () => {
    expect(unpadPkcs1v15(encoded(randomBytes(24)), 16, fallback)).toEqual(fallback)
    expect(unpadPkcs1v15(encoded(randomBytes(15)), 16, fallback)).toEqual(fallback)
  })

  it('rsaDecryptPkcs1v15: real key for a good ciphertext; a stable pseudo-random key for a bad one', async () => {
    const a = await identity('a')
    const key = createPrivateKey(a.key)
    const pub = new X509Certificate(a.cert).publicKey
    const cek = randomBytes(16)
    const good = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, cek)
    expect(rsaDecryptPkcs1v15(key, good, 16)).toEqual(cek)
    // A correctly padded 17-byte message is a wrong length for a 16-byte key: implicit rejection.
    const wrongLength = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, randomBytes(17))
    const bad = publicEncrypt(
      { key: pub, padding: constants.RSA_NO_PADDING },
      Buffer.concat([Buffer.from([0, 1]), randomBytes(254)]),
    )
    for (const c of [wrongLength, bad]) {
      const r1 = rsaDecryptPkcs1v15(key, c, 16)
      expect(r1).toHaveLength(16)
      expect(rsaDecryptPkcs1v15(key, c, 16)).toEqual(r1) // deterministic
    }
    expect(rsaDecryptPkcs1v15(key, wrongLength, 16)).not.toEqual(rsaDecryptPkcs1v15(key, bad, 16))
  })

  it('bad padding and a wrong key end in the same fixed failure through unwrapKey', async () => {
    const [a, b] = await Promise.all([identity('a'), identity('b')])
    const w = createPkcs7KeyWrapper()
    const pub = new X509Certificate(a.cert).publicKey
    const cert = parseCertificate(a.cert)
    const wrapped = decodeEnvelope(await w.wrapKeys(ec(a), samplePrivateOptions()))!
    const nonce = readGcmParameters(wrapped.parameters!)!.nonce
    const sealed = wrapped.encryptedContent
    const variants = [
      // block type 01 (signature padding) around a 16-byte key
      publicEncrypt(
        { key: pub, padding: constants.RSA_NO_PADDING },
        Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(237, 0xff), Buffer.from([0]), randomBytes(16)]),
      ),
      // a 17-byte "key"
      publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, randomBytes(17)),
      // a well-padded but wrong 16-byte key
      publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, randomBytes(16)),
      // not even smaller than the modulus
      Buffer.alloc(256, 0xff),
    ]
    for (const encryptedKey of variants) {
      const der = encodeEnvelope({ recipients: [{ cert, encryptedKey }], nonce, sealed })
      await expectDecryptFailed(w.unwrapKey(dc(a), der))
      await expectDecryptFailed(w.unwrapKey(dc(b), der))
    }
  })
})

beforeAll(async () => {
  // Make the shared identities up front, in parallel, so single tests stay within their timeout.
  await Promise.all(['a', 'b', 'other'].map((n) => identity(n)))
})
