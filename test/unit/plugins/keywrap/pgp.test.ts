import {
  createMessage,
  decryptSessionKeys,
  encrypt,
  enums,
  generateKey,
  readMessage,
  readPrivateKey,
  type EllipticCurveName,
} from 'openpgp'
import { describe, expect, it } from 'vitest'
import type { DecryptConfig, EncryptConfig } from '../../../../lib/crypt/keywrap.js'
import { CofferError } from '../../../../lib/util/errors.js'
import { MAX_KEYS_ANNOTATION_BYTES } from '../../../../lib/util/limits.js'
import {
  createPgpKeyWrapper,
  DC_GPG_PRIVATEKEYS,
  DC_GPG_PRIVATEKEYS_PASSWORDS,
  EC_GPG_PUBKEYRINGFILE,
  EC_GPG_PUBKEYS,
  EC_GPG_RECIPIENTS,
  PGP_ANNOTATION,
} from '../../../../plugins/keywrap/pgp/pgp-keywrap.js'
import { plugin } from '../../../../plugins/keywrap/pgp/index.js'
import {
  expectDecryptFailed,
  keyWrapperSuite,
  mergeConfigs,
  samplePrivateOptions,
  type KeyWrapperRecipient,
} from '../../../suites/keywrap.js'

type KeySpec = { type: 'rsa'; bits: number } | { type: 'ecc'; curve: EllipticCurveName }
interface Pair {
  /** Armored. */
  privateKey: string
  publicKey: string
  /** Binary (`gpg --export` shape). */
  privateBinary: Uint8Array
  publicBinary: Uint8Array
  email: string
}

let serial = 0
async function makeKey(spec: KeySpec, passphrase?: string): Promise<Pair> {
  const n = ++serial
  const email = `user${n}@example.com`
  const userIDs = [{ name: `User ${n}`, email }]
  const common = { userIDs, ...(passphrase ? { passphrase } : {}) }
  const armored =
    spec.type === 'rsa'
      ? await generateKey({ ...common, type: 'rsa', rsaBits: spec.bits, format: 'armored' })
      : await generateKey({ ...common, type: 'ecc', curve: spec.curve, format: 'armored' })
  const priv = await readPrivateKey({ armoredKey: armored.privateKey })
  return {
    privateKey: armored.privateKey,
    publicKey: armored.publicKey,
    privateBinary: priv.write(),
    publicBinary: priv.toPublic().write(),
    email,
  }
}

// Key generation dominates these tests: the i-th key of each spec is made once per file.
const pool = new Map<string, Promise<Pair>[]>()
function keyAt(spec: KeySpec, i: number): Promise<Pair> {
  const id = JSON.stringify(spec)
  const list = pool.get(id) ?? []
  pool.set(id, list)
  while (list.length <= i) list.push(makeKey(spec))
  return list[i]!
}

const ec = (pub: string | Uint8Array): EncryptConfig => ({ [EC_GPG_PUBKEYS]: [Buffer.from(pub)] })
const dc = (priv: string | Uint8Array, password = ''): DecryptConfig => ({
  [DC_GPG_PRIVATEKEYS]: [Buffer.from(priv)],
  [DC_GPG_PRIVATEKEYS_PASSWORDS]: [Buffer.from(password)],
})
const recipient = (p: Pair): KeyWrapperRecipient => ({ ec: ec(p.publicKey), dc: dc(p.privateKey) })

/** Top-level packets of a binary OpenPGP message (RFC 4880 §4.2, new format only, as we write). */
function packets(bytes: Uint8Array): { tag: number; start: number; body: number; end: number }[] {
  const out: { tag: number; start: number; body: number; end: number }[] = []
  let at = 0
  while (at < bytes.length) {
    const first = bytes[at]!
    if ((first & 0xc0) !== 0xc0) throw new Error(`not a new-format packet at ${at}`)
    const tag = first & 0x3f
    const l0 = bytes[at + 1]!
    let len: number
    let body: number
    if (l0 < 192) [len, body] = [l0, at + 2]
    else if (l0 < 224) [len, body] = [((l0 - 192) << 8) + bytes[at + 2]! + 192, at + 3]
    else if (l0 === 255) [len, body] = [Buffer.from(bytes).readUInt32BE(at + 2), at + 6]
    else throw new Error('partial body lengths are not expected at the top level')
    out.push({ tag, start: at, body, end: body + len })
    at = body + len
  }
  return out
}

function flipAt(bytes: Uint8Array, i: number): Uint8Array {
  const copy = Buffer.from(bytes)
  copy[i] = copy[i]! ^ 0x01
  return copy
}

/** One variant per cryptographic part: PKESK key ID, wrapped session key, ciphertext, MDC. */
function tamperPgp(wrapped: Uint8Array): Uint8Array[] {
  const ps = packets(wrapped)
  const pkesk = ps.find((p) => p.tag === enums.packet.publicKeyEncryptedSessionKey)!
  const seipd = ps.find((p) => p.tag === enums.packet.symEncryptedIntegrityProtectedData)!
  return [
    flipAt(wrapped, pkesk.body + 3), // key ID
    flipAt(wrapped, pkesk.end - 3), // end of the encrypted session key
    flipAt(wrapped, seipd.body + 20), // ciphertext: prefix / literal header
    flipAt(wrapped, Math.floor((seipd.body + seipd.end) / 2)), // ciphertext: middle
    flipAt(wrapped, seipd.end - 1), // MDC
  ]
}

function fixture(specs: KeySpec[], unrelatedSpec: KeySpec) {
  return async () => {
    const used = new Map<string, number>()
    const next = (spec: KeySpec): Promise<Pair> => {
      const i = used.get(JSON.stringify(spec)) ?? 0
      used.set(JSON.stringify(spec), i + 1)
      return keyAt(spec, i)
    }
    const own = await Promise.all(specs.map(next))
    const unrelated = await next(unrelatedSpec)
    return {
      wrapper: createPgpKeyWrapper(),
      recipients: own.map(recipient),
      unrelated: dc(unrelated.privateKey),
      tamper: tamperPgp,
    }
  }
}

const RSA: KeySpec = { type: 'rsa', bits: 2048 }
const X25519: KeySpec = { type: 'ecc', curve: 'curve25519Legacy' }
const P256: KeySpec = { type: 'ecc', curve: 'nistP256' }
const P384: KeySpec = { type: 'ecc', curve: 'nistP384' }

keyWrapperSuite('pgp, RSA 2048', fixture([RSA, RSA], RSA))
keyWrapperSuite('pgp, ECC curve25519', fixture([X25519, X25519], X25519))
keyWrapperSuite('pgp, ECC NIST P-256', fixture([P256, P256], P256))
keyWrapperSuite('pgp, mixed RSA + curve25519 + P-384', fixture([RSA, X25519, P384], P256))

async function errorOf(p: Promise<unknown>): Promise<CofferError> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  )
  if (!(err instanceof CofferError)) throw err
  return err
}

describe('pgp key wrapper: registration', () => {
  it('is keywrap.v1/pgp and writes org.opencontainers.image.enc.keys.pgp', () => {
    expect(plugin).toMatchObject({ point: 'keywrap.v1', name: 'pgp' })
    const w = plugin.init()
    expect(w.name).toBe('pgp')
    expect(w.annotationId).toBe('org.opencontainers.image.enc.keys.pgp')
    expect(PGP_ANNOTATION).toBe(w.annotationId)
  })
})

describe('pgp key wrapper: what it writes (go-crypto openpgp.Encrypt shapes, spec §1.6)', () => {
  const w = createPgpKeyWrapper()
  const k = samplePrivateOptions()

  it('a binary message: one PKESK v3 per recipient, then one SEIPD v1; AES-256; uncompressed literal data', async () => {
    const [a, b] = await Promise.all([keyAt(RSA, 0), keyAt(X25519, 0)])
    const wrapped = await w.wrapKeys(mergeConfigs(ec(a!.publicKey), ec(b!.publicBinary)), k)
    expect(Buffer.from(wrapped).subarray(0, 5).toString('latin1')).not.toBe('-----')
    const ps = packets(wrapped)
    expect(ps.map((p) => p.tag)).toEqual([
      enums.packet.publicKeyEncryptedSessionKey,
      enums.packet.publicKeyEncryptedSessionKey,
      enums.packet.symEncryptedIntegrityProtectedData,
    ])
    expect(ps.slice(0, 2).map((p) => wrapped[p.body])).toEqual([3, 3]) // PKESK version
    expect(wrapped[ps[2]!.body]).toBe(1) // SEIPD version

    const message = await readMessage({ binaryMessage: wrapped })
    const priv = await readPrivateKey({ armoredKey: a!.privateKey })
    const [sk] = await decryptSessionKeys({ message, decryptionKeys: priv })
    expect(sk!.algorithm).toBe('aes256')
    const plain = await (await readMessage({ binaryMessage: wrapped })).decrypt([priv])
    expect(plain.packets.map((p) => (p.constructor as unknown as { tag: number }).tag)).toEqual([
      enums.packet.literalData,
    ])
    expect(Buffer.from(plain.getLiteralData() as Uint8Array)).toEqual(k)
  })

  it('takes armored and binary keys, and a file holding several keys (all become recipients)', async () => {
    const [a, b] = await Promise.all([keyAt(RSA, 0), keyAt(P256, 0)])
    const both = Buffer.concat([a!.publicBinary, b!.publicBinary])
    const wrapped = await w.wrapKeys(ec(both), k)
    expect(packets(wrapped).filter((p) => p.tag === enums.packet.publicKeyEncryptedSessionKey)).toHaveLength(
      2,
    )
    expect(Buffer.from(await w.unwrapKey(dc(a!.privateBinary), wrapped))).toEqual(k)
    expect(Buffer.from(await w.unwrapKey(dc(b!.privateKey), wrapped))).toEqual(k)
  })

  it('picks recipients from a keyring by e-mail or by name (gpg-recipients + gpg-pubkeyringfile)', async () => {
    const [a, b, c] = await Promise.all([keyAt(RSA, 0), keyAt(X25519, 0), keyAt(P256, 0)])
    const ring = Buffer.concat([a!.publicBinary, b!.publicBinary, c!.publicBinary])
    const nameOfB = (await readPrivateKey({ armoredKey: b!.privateKey })).users[0]!.userID!.name
    const byName: EncryptConfig = {
      [EC_GPG_RECIPIENTS]: [Buffer.from(a!.email), Buffer.from(nameOfB)],
      [EC_GPG_PUBKEYRINGFILE]: [ring],
    }
    expect(w.hasRecipients(byName)).toBe(true)
    const wrapped = await w.wrapKeys(byName, k)
    expect(packets(wrapped).filter((p) => p.tag === enums.packet.publicKeyEncryptedSessionKey)).toHaveLength(
      2,
    )
    expect(Buffer.from(await w.unwrapKey(dc(a!.privateKey), wrapped))).toEqual(k)
    expect(Buffer.from(await w.unwrapKey(dc(b!.privateKey), wrapped))).toEqual(k)
    await expectDecryptFailed(w.unwrapKey(dc(c!.privateKey), wrapped))

    const missing = await errorOf(
      w.wrapKeys({ ...byName, [EC_GPG_RECIPIENTS]: [Buffer.from('nobody@example.com')] }, k),
    )
    expect(missing).toMatchObject({ code: 'ERR_CRYPT_RECIPIENT_INVALID' })
    expect(missing.message).toContain('nobody@example.com')
    const noRing = await errorOf(w.wrapKeys({ [EC_GPG_RECIPIENTS]: [Buffer.from(a!.email)] }, k))
    expect(noRing.code).toBe('ERR_CRYPT_NO_KEY')
  })

  it('refuses no recipients, junk, and keys that cannot encrypt; names the recipient by position', async () => {
    expect((await errorOf(w.wrapKeys({}, k))).code).toBe('ERR_CRYPT_NO_KEY')
    expect((await errorOf(w.wrapKeys({ [EC_GPG_PUBKEYS]: [] }, k))).code).toBe('ERR_CRYPT_NO_KEY')
    const [a] = await Promise.all([keyAt(RSA, 0)])
    const junk = await errorOf(w.wrapKeys(mergeConfigs(ec(a!.publicKey), ec('not a key')), k))
    expect(junk).toMatchObject({
      code: 'ERR_CRYPT_KEY_INVALID',
      message: expect.stringContaining('pgp recipient 2'),
    })
    const signOnly = await generateKey({
      userIDs: [{ email: 'sign@example.com' }],
      type: 'ecc',
      subkeys: [{ sign: true }],
      format: 'armored',
    })
    // The encryption subkey is replaced by a signing one: nothing left to encrypt to.
    const sign = await errorOf(w.wrapKeys(ec(signOnly.publicKey), k))
    expect(sign.code).toBe('ERR_CRYPT_KEY_INVALID')
  })
})

describe('pgp key wrapper: what it reads', () => {
  const w = createPgpKeyWrapper()
  const k = samplePrivateOptions()

  it('unlocks a passphrase-protected key with its password; a wrong or missing one is ERR_CRYPT_KEY_INVALID naming the position, never the password', async () => {
    const locked = await makeKey(RSA, 'correct horse')
    const other = await keyAt(RSA, 0)
    const wrapped = await w.wrapKeys(ec(locked.publicKey), k)
    expect(Buffer.from(await w.unwrapKey(dc(locked.privateKey, 'correct horse'), wrapped))).toEqual(k)
    expect(Buffer.from(await w.unwrapKey(dc(locked.privateBinary, 'correct horse'), wrapped))).toEqual(k)

    const wrong = await errorOf(
      w.unwrapKey(mergeConfigs(dc(other.privateKey), dc(locked.privateKey, 'battery staple')), wrapped),
    )
    expect(wrong.code).toBe('ERR_CRYPT_KEY_INVALID')
    expect(wrong.message).toContain('pgp decryption key 2')
    expect(wrong.message).not.toContain('battery staple')
    expect(wrong.message).not.toContain('correct horse')
    expect(wrong.cause).toBeUndefined()
    const none = await errorOf(w.unwrapKey(dc(locked.privateKey), wrapped))
    expect(none).toMatchObject({
      code: 'ERR_CRYPT_KEY_INVALID',
      message: expect.stringContaining('pgp decryption key 1'),
    })
    // Passwords are by position: a list that is too short means "none" for the keys past its end.
    const short: DecryptConfig = { [DC_GPG_PRIVATEKEYS]: [Buffer.from(locked.privateKey)] }
    expect((await errorOf(w.unwrapKey(short, wrapped))).code).toBe('ERR_CRYPT_KEY_INVALID')
    // A password given for an unlocked key is ignored.
    expect(
      Buffer.from(
        await w.unwrapKey(dc(other.privateKey, 'unused'), await w.wrapKeys(ec(other.publicKey), k)),
      ),
    ).toEqual(k)
  })

  it('a config reused across layers unlocks each key once, and a wrong password is not remembered as right', async () => {
    const locked = await makeKey(RSA, 'pw one')
    const [w1, w2] = await Promise.all([
      w.wrapKeys(ec(locked.publicKey), k),
      w.wrapKeys(ec(locked.publicKey), k),
    ])
    const file = Buffer.from(locked.privateKey)
    const wrong = { [DC_GPG_PRIVATEKEYS]: [file], [DC_GPG_PRIVATEKEYS_PASSWORDS]: [Buffer.from('pw two')] }
    const right = { [DC_GPG_PRIVATEKEYS]: [file], [DC_GPG_PRIVATEKEYS_PASSWORDS]: [Buffer.from('pw one')] }
    expect((await errorOf(w.unwrapKey(wrong, w1))).code).toBe('ERR_CRYPT_KEY_INVALID')
    expect(Buffer.from(await w.unwrapKey(right, w1))).toEqual(k)
    // Remembered per key file object: with its bytes wiped, the second layer still unwraps, and
    // the wrong password still fails, so neither outcome was worked out again.
    file.fill(0)
    expect(Buffer.from(await w.unwrapKey(right, w2))).toEqual(k)
    expect((await errorOf(w.unwrapKey(wrong, w2))).code).toBe('ERR_CRYPT_KEY_INVALID')
  })

  it('refuses a decryption key that is no OpenPGP secret key, naming its position', async () => {
    const a = await keyAt(RSA, 0)
    const wrapped = await w.wrapKeys(ec(a.publicKey), k)
    for (const bad of ['junk', a.publicKey]) {
      const err = await errorOf(w.unwrapKey(mergeConfigs(dc(a.privateKey), dc(bad)), wrapped))
      expect(err).toMatchObject({
        code: 'ERR_CRYPT_KEY_INVALID',
        message: expect.stringContaining('pgp decryption key 2'),
      })
    }
  })

  it('unwraps with a secret keyring holding several keys', async () => {
    const [a, b] = await Promise.all([keyAt(RSA, 0), keyAt(X25519, 0)])
    const ring = Buffer.concat([a!.privateBinary, b!.privateBinary])
    expect(Buffer.from(await w.unwrapKey(dc(ring), await w.wrapKeys(ec(b!.publicKey), k)))).toEqual(k)
  })

  it('refuses a compressed message (no decompression bombs), even one the key opens', async () => {
    const a = await keyAt(RSA, 0)
    const pub = (await readPrivateKey({ armoredKey: a.privateKey })).toPublic()
    const message = await createMessage({ binary: new Uint8Array(k) })
    const compressed = (message as unknown as { compress(algo: enums.compression): typeof message }).compress(
      enums.compression.zlib,
    )
    const wrapped = await encrypt({ message: compressed, encryptionKeys: pub, format: 'binary' })
    // The same message opens with openpgp itself, so only the refusal stops it here.
    const priv = await readPrivateKey({ armoredKey: a.privateKey })
    const opened = await (await readMessage({ binaryMessage: wrapped })).decrypt([priv])
    expect(opened.packets.map((p) => (p.constructor as unknown as { tag: number }).tag)).toEqual([
      enums.packet.compressedData,
    ])
    await expectDecryptFailed(w.unwrapKey(dc(a.privateKey), wrapped))

    // A bomb: 16 MiB of zeros, compressed to a few KiB.
    const bomb = (
      (await createMessage({ binary: new Uint8Array(16 * 1024 * 1024) })) as unknown as {
        compress(algo: enums.compression): typeof message
      }
    ).compress(enums.compression.zip)
    const wrappedBomb = await encrypt({ message: bomb, encryptionKeys: pub, format: 'binary' })
    expect(wrappedBomb.byteLength).toBeLessThan(128 * 1024)
    await expectDecryptFailed(w.unwrapKey(dc(a.privateKey), wrappedBomb))
  })

  it('refuses armored messages, junk and oversized input', async () => {
    const a = await keyAt(RSA, 0)
    const pub = (await readPrivateKey({ armoredKey: a.privateKey })).toPublic()
    const armored = await encrypt({
      message: await createMessage({ binary: new Uint8Array(k) }),
      encryptionKeys: pub,
    })
    await expectDecryptFailed(w.unwrapKey(dc(a.privateKey), Buffer.from(armored)))
    await expectDecryptFailed(w.unwrapKey(dc(a.privateKey), Buffer.from('junk')))
    await expectDecryptFailed(w.unwrapKey(dc(a.privateKey), new Uint8Array(0)))
    const big = await errorOf(w.unwrapKey(dc(a.privateKey), new Uint8Array(MAX_KEYS_ANNOTATION_BYTES + 1)))
    expect(big.code).toBe('ERR_TOO_LARGE')
  })

  it('noPossibleKeys looks at gpg-privatekeys only', () => {
    expect(w.noPossibleKeys({ privkeys: [Buffer.from('x')] })).toBe(true)
    expect(w.noPossibleKeys({ [DC_GPG_PRIVATEKEYS]: [] })).toBe(true)
    expect(w.noPossibleKeys({ [DC_GPG_PRIVATEKEYS]: [Buffer.from('x')] })).toBe(false)
    expect(w.hasRecipients({ pubkeys: [Buffer.from('x')] })).toBe(false)
  })

  it('honours an abort signal', async () => {
    const a = await keyAt(RSA, 0)
    const ac = new AbortController()
    ac.abort()
    expect((await errorOf(w.wrapKeys(ec(a.publicKey), k, { signal: ac.signal }))).code).toBe('ERR_CANCELED')
    expect(
      (await errorOf(w.unwrapKey(dc(a.privateKey), new Uint8Array(10), { signal: ac.signal }))).code,
    ).toBe('ERR_CANCELED')
  })
})
