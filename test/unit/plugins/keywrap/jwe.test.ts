import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { FlattenedEncrypt, GeneralEncrypt } from 'jose'
import { describe, expect, it } from 'vitest'
import type { DecryptConfig, EncryptConfig } from '../../../../lib/crypt/keywrap.js'
import { generateKeyPair, type EcCurve } from '../../../../lib/crypt/keys.js'
import { CofferError } from '../../../../lib/util/errors.js'
import { MAX_JWE_BYTES, MAX_JWE_RECIPIENTS } from '../../../../lib/util/limits.js'
import { createJweKeyWrapper, JWE_ANNOTATION, plugin } from '../../../../plugins/keywrap/jwe/index.js'
import {
  expectDecryptFailed,
  keyWrapperSuite,
  mergeConfigs,
  samplePrivateOptions,
  type KeyWrapperRecipient,
} from '../../../suites/keywrap.js'

type KeySpec = { type: 'rsa'; bits: number } | { type: 'ec'; curve: EcCurve }
interface Pair {
  privatePem: string
  publicPem: string
}

// Key generation dominates these tests: the i-th key of each spec is made once per file.
const pool = new Map<string, Promise<Pair>[]>()
function keyAt(spec: KeySpec, i: number): Promise<Pair> {
  const id = JSON.stringify(spec)
  const list = pool.get(id) ?? []
  pool.set(id, list)
  while (list.length <= i) {
    list.push(
      spec.type === 'rsa'
        ? generateKeyPair('rsa', { bits: spec.bits })
        : generateKeyPair('ec', { curve: spec.curve }),
    )
  }
  return list[i]!
}
/** The first `n` keys of a spec. */
const keys = (spec: KeySpec, n: number): Promise<Pair[]> =>
  Promise.all(Array.from({ length: n }, (_, i) => keyAt(spec, i)))

const ec = (pub: string | Uint8Array): EncryptConfig => ({ pubkeys: [Buffer.from(pub)] })
const dc = (priv: string | Uint8Array, password = ''): DecryptConfig => ({
  privkeys: [Buffer.from(priv)],
  privkeysPasswords: [Buffer.from(password)],
})
const recipient = (p: Pair): KeyWrapperRecipient => ({ ec: ec(p.publicPem), dc: dc(p.privatePem) })

/** Changes one base64url character in the middle of `s` (a middle one always changes the bytes). */
function flip(s: string): string {
  const i = Math.floor(s.length / 2)
  return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
}

/** One variant per cryptographic member of a flattened JWE. */
function tamperJwe(wrapped: Uint8Array): Uint8Array[] {
  const jwe = JSON.parse(Buffer.from(wrapped).toString()) as Record<string, string>
  return ['ciphertext', 'tag', 'iv', 'encrypted_key', 'protected'].map((member) =>
    Buffer.from(JSON.stringify({ ...jwe, [member]: flip(jwe[member]!) })),
  )
}

/** Distinct keys: each recipient and the unrelated key get their own index within their spec. */
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
      wrapper: createJweKeyWrapper(),
      recipients: own.map(recipient),
      unrelated: dc(unrelated.privatePem),
      tamper: tamperJwe,
    }
  }
}

const RSA: KeySpec = { type: 'rsa', bits: 2048 }
const P256: KeySpec = { type: 'ec', curve: 'P-256' }
const P384: KeySpec = { type: 'ec', curve: 'P-384' }
const P521: KeySpec = { type: 'ec', curve: 'P-521' }

keyWrapperSuite('jwe, RSA 2048', fixture([RSA, RSA], RSA))
keyWrapperSuite('jwe, EC P-256', fixture([P256, P256], P256))
keyWrapperSuite('jwe, EC P-384', fixture([P384, P384], P384))
keyWrapperSuite('jwe, mixed RSA + P-256 + P-521', fixture([RSA, P256, P521], P256))

const decode = (b64u: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(b64u, 'base64url').toString()) as Record<string, unknown>
const parse = (bytes: Uint8Array): Record<string, unknown> =>
  JSON.parse(Buffer.from(bytes).toString()) as Record<string, unknown>

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    return err instanceof CofferError ? err.code : `not a CofferError: ${String(err)}`
  }
}

describe('jwe key wrapper: what it writes (go-jose shapes, spec §1.6)', () => {
  const w = createJweKeyWrapper()
  const k = samplePrivateOptions()

  it('one RSA recipient: flattened JSON, {alg: RSA-OAEP, enc: A256GCM} protected, go-jose member order', async () => {
    const [p] = await keys(RSA, 1)
    const jwe = parse(await w.wrapKeys(ec(p!.publicPem), k))
    expect(Object.keys(jwe)).toEqual(['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag'])
    expect(decode(jwe.protected as string)).toEqual({ alg: 'RSA-OAEP', enc: 'A256GCM' })
    expect(Buffer.from(jwe.iv as string, 'base64url')).toHaveLength(12)
    expect(Buffer.from(jwe.tag as string, 'base64url')).toHaveLength(16)
    expect(Buffer.from(jwe.encrypted_key as string, 'base64url')).toHaveLength(256)
  })

  it('one EC recipient: ECDH-ES+A256KW with the epk in the protected header', async () => {
    const [p] = await keys(P384, 1)
    const jwe = parse(await w.wrapKeys(ec(p!.publicPem), k))
    const header = decode(jwe.protected as string)
    expect(Object.keys(header)).toEqual(['alg', 'enc', 'epk'])
    expect(header).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', epk: { kty: 'EC', crv: 'P-384' } })
    expect(Object.keys(header.epk as object).sort()).toEqual(['crv', 'kty', 'x', 'y'])
  })

  it('several recipients: general JSON, protected {enc} only, alg (and epk) per recipient, no top-level encrypted_key', async () => {
    const [r] = await keys(RSA, 1)
    const [e] = await keys(P256, 1)
    const jwe = parse(await w.wrapKeys(mergeConfigs(ec(r!.publicPem), ec(e!.publicPem)), k))
    expect(Object.keys(jwe)).toEqual(['protected', 'recipients', 'iv', 'ciphertext', 'tag'])
    expect(decode(jwe.protected as string)).toEqual({ enc: 'A256GCM' })
    const recipients = jwe.recipients as { header: Record<string, unknown>; encrypted_key: string }[]
    expect(recipients.map((x) => Object.keys(x))).toEqual([
      ['header', 'encrypted_key'],
      ['header', 'encrypted_key'],
    ])
    expect(recipients[0]!.header).toEqual({ alg: 'RSA-OAEP' })
    expect(Object.keys(recipients[1]!.header)).toEqual(['alg', 'epk'])
    expect(recipients[1]!.header).toMatchObject({ alg: 'ECDH-ES+A256KW', epk: { crv: 'P-256' } })
  })

  it("a JWK recipient's alg is used: RSA-OAEP-256 and ECDH-ES+A128KW", async () => {
    const [r] = await keys(RSA, 1)
    const [e] = await keys(P256, 1)
    for (const [p, alg] of [
      [r!, 'RSA-OAEP-256'],
      [e!, 'ECDH-ES+A128KW'],
    ] as const) {
      const jwk = { ...createPublicKey(p.publicPem).export({ format: 'jwk' }), alg }
      const wrapped = await w.wrapKeys(ec(JSON.stringify(jwk)), k)
      expect(decode(parse(wrapped).protected as string).alg).toBe(alg)
      expect(Buffer.from(await w.unwrapKey(dc(p.privatePem), wrapped))).toEqual(k)
    }
  })

  it('a JWK without alg gets the default for its key type', async () => {
    const [e] = await keys(P256, 1)
    const jwk = createPublicKey(e!.publicPem).export({ format: 'jwk' })
    const wrapped = await w.wrapKeys(ec(JSON.stringify(jwk)), k)
    expect(decode(parse(wrapped).protected as string).alg).toBe('ECDH-ES+A256KW')
  })

  it('refuses JWK algs ocicrypt refuses, algs that do not fit the key, small RSA keys and no recipients', async () => {
    const [r] = await keys(RSA, 1)
    const rsaJwk = createPublicKey(r!.publicPem).export({ format: 'jwk' })
    for (const alg of ['RSA1_5', 'ECDH-ES', 'A256KW', 'dir', 'ECDH-ES+A256KW']) {
      expect(await codeOf(w.wrapKeys(ec(JSON.stringify({ ...rsaJwk, alg })), k))).toBe(
        'ERR_CRYPT_KEY_INVALID',
      )
    }
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    })
    const err = await w.wrapKeys(ec(small), k).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_CRYPT_KEY_INVALID', message: expect.stringContaining('1024-bit') })
    expect(await codeOf(w.wrapKeys({}, k))).toBe('ERR_CRYPT_NO_KEY')
    expect(await codeOf(w.wrapKeys({ pubkeys: [] }, k))).toBe('ERR_CRYPT_NO_KEY')
    expect(await codeOf(w.wrapKeys(ec('not a key'), k))).toBe('ERR_CRYPT_KEY_INVALID')
  })

  it('names the recipient by position when a key is bad', async () => {
    const [r] = await keys(RSA, 1)
    const err = await w.wrapKeys(mergeConfigs(ec(r!.publicPem), ec('junk')), k).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'ERR_CRYPT_KEY_INVALID',
      message: expect.stringContaining('jwe recipient 2'),
    })
  })
})

describe('jwe key wrapper: what it reads', () => {
  const w = createJweKeyWrapper()
  const k = samplePrivateOptions()

  it("tolerates go-jose's extra top-level encrypted_key in general JSON, whatever its value", async () => {
    const [a, b] = await keys(RSA, 2)
    const jwe = parse(await w.wrapKeys(mergeConfigs(ec(a!.publicPem), ec(b!.publicPem)), k))
    const recipients = jwe.recipients as { encrypted_key: string }[]
    for (const extra of [recipients[0]!.encrypted_key, 'AAAA']) {
      const quirky = Buffer.from(JSON.stringify({ ...jwe, encrypted_key: extra }))
      expect(Buffer.from(await w.unwrapKey(dc(b!.privatePem), quirky))).toEqual(k)
    }
  })

  it('reads general JSON with one recipient (ocicrypt-rs writes that)', async () => {
    const [e] = await keys(P256, 1)
    const jwe = await new GeneralEncrypt(k)
      .setProtectedHeader({ enc: 'A256GCM' })
      .addRecipient(createPublicKey(e!.publicPem))
      .setUnprotectedHeader({ alg: 'ECDH-ES+A256KW' })
      .encrypt()
    expect(Buffer.from(await w.unwrapKey(dc(e!.privatePem), Buffer.from(JSON.stringify(jwe))))).toEqual(k)
  })

  it('accepts every content encryption go-jose does', async () => {
    const [r] = await keys(RSA, 1)
    for (const enc of ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512']) {
      const jwe = await new FlattenedEncrypt(k)
        .setProtectedHeader({ alg: 'RSA-OAEP-256', enc })
        .encrypt(createPublicKey(r!.publicPem))
      expect(Buffer.from(await w.unwrapKey(dc(r!.privatePem), Buffer.from(JSON.stringify(jwe))))).toEqual(k)
    }
  })

  it('accepts ECDH-ES+A128KW and +A192KW', async () => {
    const [e] = await keys(P521, 1)
    for (const alg of ['ECDH-ES+A128KW', 'ECDH-ES+A192KW'] as const) {
      const jwe = await new FlattenedEncrypt(k)
        .setProtectedHeader({ alg, enc: 'A256GCM' })
        .encrypt(createPublicKey(e!.publicPem))
      expect(Buffer.from(await w.unwrapKey(dc(e!.privatePem), Buffer.from(JSON.stringify(jwe))))).toEqual(k)
    }
  })

  it('refuses key management outside the ocicrypt set (ECDH-ES direct, RSA-OAEP-512) and compressed JWEs', async () => {
    const [e] = await keys(P256, 1)
    const [r] = await keys(RSA, 1)
    const made: [string, Promise<object>][] = [
      [
        'ECDH-ES',
        new FlattenedEncrypt(k)
          .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' })
          .encrypt(createPublicKey(e!.publicPem)),
      ],
      [
        'RSA-OAEP-512',
        new FlattenedEncrypt(k)
          .setProtectedHeader({ alg: 'RSA-OAEP-512', enc: 'A256GCM' })
          .encrypt(createPublicKey(r!.publicPem)),
      ],
    ]
    const offered = mergeConfigs(dc(e!.privatePem), dc(r!.privatePem))
    for (const [, jwe] of made)
      await expectDecryptFailed(w.unwrapKey(offered, Buffer.from(JSON.stringify(await jwe))))
    // ocicrypt never compresses; a "zip" JWE could be a decompression bomb.
    const zipped = await new FlattenedEncrypt(k)
      .setProtectedHeader({ alg: 'RSA-OAEP', enc: 'A256GCM', zip: 'DEF' })
      .encrypt(createPublicKey(r!.publicPem))
    await expectDecryptFailed(w.unwrapKey(offered, Buffer.from(JSON.stringify(zipped))))
  })

  it('a non-JSON annotation says so (ERR_CRYPT_OPTIONS_INVALID); JSON that is no JWE is the fixed failure', async () => {
    const [r] = await keys(RSA, 1)
    const keysOffered = dc(r!.privatePem)
    const err = await w.unwrapKey(keysOffered, Buffer.from('\x00garbage')).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'ERR_CRYPT_OPTIONS_INVALID',
      message: 'the jwe annotation is not JSON',
    })
    for (const junk of [
      '[]',
      '{}',
      '"x"',
      '{"ciphertext":1}',
      '{"ciphertext":"AA","recipients":[]}',
      '{"ciphertext":"AA","protected":"!!"}',
    ]) {
      await expectDecryptFailed(w.unwrapKey(keysOffered, Buffer.from(junk)))
    }
  })

  it(`refuses more than ${MAX_JWE_BYTES} bytes and more than ${MAX_JWE_RECIPIENTS} recipients`, async () => {
    const [r] = await keys(RSA, 1)
    expect(await codeOf(w.unwrapKey(dc(r!.privatePem), Buffer.alloc(MAX_JWE_BYTES + 1, 0x20)))).toBe(
      'ERR_TOO_LARGE',
    )
    const many = { ciphertext: 'AA', recipients: Array.from({ length: MAX_JWE_RECIPIENTS + 1 }, () => ({})) }
    expect(await codeOf(w.unwrapKey(dc(r!.privatePem), Buffer.from(JSON.stringify(many))))).toBe(
      'ERR_TOO_LARGE',
    )
  })

  it('takes private keys in every form keys.ts parses: encrypted PKCS#8 with its password, PKCS#1, SEC1, JWK', async () => {
    const [r] = await keys(RSA, 1)
    const [e] = await keys(P256, 1)
    const rsaKey = createPrivateKey(r!.privatePem)
    const ecKey = createPrivateKey(e!.privatePem)
    const both = mergeConfigs(ec(r!.publicPem), ec(e!.publicPem))
    const wrapped = await w.wrapKeys(both, k)
    const encrypted = rsaKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' })
    const forms: DecryptConfig[] = [
      dc(encrypted, 'pw'),
      dc(rsaKey.export({ type: 'pkcs1', format: 'der' })),
      dc(ecKey.export({ type: 'sec1', format: 'pem' })),
      dc(JSON.stringify(ecKey.export({ format: 'jwk' }))),
    ]
    for (const form of forms) expect(Buffer.from(await w.unwrapKey(form, wrapped))).toEqual(k)
    expect(await codeOf(w.unwrapKey(dc(encrypted, 'wrong'), wrapped))).toBe('ERR_CRYPT_KEY_INVALID')
    expect(await codeOf(w.unwrapKey(dc(encrypted), wrapped))).toBe('ERR_CRYPT_KEY_INVALID')
  })

  it('skips offered files that are no private key, and keys of other types or curves', async () => {
    const [e] = await keys(P256, 1)
    const [p384] = await keys(P384, 1)
    const wrapped = await w.wrapKeys(ec(e!.publicPem), k)
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' })
    const noise = mergeConfigs(dc(e!.publicPem), dc('hello'), dc(ed), dc(p384!.privatePem))
    await expectDecryptFailed(w.unwrapKey(noise, wrapped))
    expect(Buffer.from(await w.unwrapKey(mergeConfigs(noise, dc(e!.privatePem)), wrapped))).toEqual(k)
  })

  it('stops on an aborted signal with ERR_CANCELED', async () => {
    const [r] = await keys(RSA, 1)
    const wrapped = await w.wrapKeys(ec(r!.publicPem), k)
    const ac = new AbortController()
    ac.abort()
    expect(await codeOf(w.unwrapKey(dc(r!.privatePem), wrapped, { signal: ac.signal }))).toBe('ERR_CANCELED')
    expect(await codeOf(w.wrapKeys(ec(r!.publicPem), k, { signal: ac.signal }))).toBe('ERR_CANCELED')
  })
})

describe('jwe plugin registration', () => {
  it('is keywrap.v1/jwe and builds a wrapper for org.opencontainers.image.enc.keys.jwe', () => {
    expect(plugin.point).toBe('keywrap.v1')
    expect(plugin.name).toBe('jwe')
    const w = plugin.init()
    expect(w.name).toBe('jwe')
    expect(w.annotationId).toBe('org.opencontainers.image.enc.keys.jwe')
    expect(JWE_ANNOTATION).toBe(w.annotationId)
  })
})
