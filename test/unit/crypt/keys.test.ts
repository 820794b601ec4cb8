import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  generateKeyPair,
  keyKindOf,
  parseDecryptionKeyArg,
  parsePrivateKey,
  parsePublicKey,
} from '../../../lib/crypt/keys.js'
import { CofferError } from '../../../lib/util/errors.js'

/** A self-signed P-256 certificate (public data only; its key was thrown away). */
const CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBhDCCASmgAwIBAgIUCxc8rW6l0mBh9bSwSARWkq9zQoowCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLY29mZmVyLXRlc3QwIBcNMjYxMTIzMjAwNTU2WhgPMjEyNjEw
MzAyMDA1NTZaMBYxFDASBgNVBAMMC2NvZmZlci10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEWxjqqKdTzlxOPLfPQR61n+OwTbj/7Ufhs9z+EVIk5l+LZ1BH
RiBQrzJJzNMWxIlNJQxMeRVxeyKM2rrPm96ULqNTMFEwHQYDVR0OBBYEFIYOMzlN
sottZDVq/9JLwLOqFzTNMB8GA1UdIwQYMBaAFIYOMzlNsottZDVq/9JLwLOqFzTN
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJdIQaQI1OH+J0wB
cUZ7gK/OBYnVxa64pwF7QftkHa0fAiEAkDXotzyv7AdW+XQxD+XkIfAr+jx4JB//
MvFjOSTTpLE=
-----END CERTIFICATE-----
`
const CERT_DER = Buffer.from(CERT_PEM.replace(/-----[^-]+-----|\s/g, ''), 'base64')

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
const PASSWORD = 'correct horse'

const b = (s: string | Buffer): Buffer => Buffer.from(s)
const same = (a: KeyObject | undefined, want: KeyObject): boolean => a !== undefined && a.equals(want)

async function errorOf(p: Promise<unknown>): Promise<CofferError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(CofferError)
  return err as CofferError
}

describe('parsePublicKey', () => {
  it('reads PKIX PEM and DER for RSA and every NIST curve', async () => {
    const pem = (k: KeyObject) => b(k.export({ type: 'spki', format: 'pem' }))
    const der = (k: KeyObject) => k.export({ type: 'spki', format: 'der' })
    expect(await parsePublicKey(pem(rsa.publicKey), 'rsa.pem')).toMatchObject({ kind: 'rsa' })
    expect(await parsePublicKey(der(rsa.publicKey), 'rsa.der')).toMatchObject({ kind: 'rsa' })
    for (const [namedCurve, curve] of [
      ['prime256v1', 'P-256'],
      ['secp384r1', 'P-384'],
      ['secp521r1', 'P-521'],
    ] as const) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve })
      const info = await parsePublicKey(pem(publicKey), 'ec.pem')
      expect(info).toMatchObject({ kind: 'ec', curve })
      expect(info.key.equals(publicKey)).toBe(true)
      expect(info.jwk).toBeUndefined()
      expect(await parsePublicKey(der(publicKey), 'ec.der')).toMatchObject({ kind: 'ec', curve })
    }
  })

  it('reads a public JWK and reports its alg', async () => {
    const jwk = rsa.publicKey.export({ format: 'jwk' })
    expect(await parsePublicKey(b(JSON.stringify(jwk)), 'k.jwk')).toMatchObject({ kind: 'rsa', jwk: {} })
    const withAlg = await parsePublicKey(b(JSON.stringify({ ...jwk, alg: 'RSA-OAEP-256' })), 'k.jwk')
    expect(withAlg.jwk).toEqual({ alg: 'RSA-OAEP-256' })
    expect(withAlg.key.equals(rsa.publicKey)).toBe(true)
  })

  it('takes the PUBLIC KEY block among others', async () => {
    const text = `some notes\n${CERT_PEM}${rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string}`
    expect((await parsePublicKey(b(text), 'bundle.pem')).key.equals(rsa.publicKey)).toBe(true)
  })

  it('refuses PKCS#1 "RSA PUBLIC KEY" like ocicrypt, saying how to convert it', async () => {
    const pkcs1 = b(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }))
    const err = await errorOf(parsePublicKey(pkcs1, 'old.pem'))
    expect(err.code).toBe('ERR_CRYPT_KEY_INVALID')
    expect(err.message).toContain('PKIX')
    expect(err.message).toContain('old.pem')
  })

  it('refuses private keys, certificates, junk and private JWKs with ERR_CRYPT_KEY_INVALID', async () => {
    const inputs = [
      b(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })),
      b(CERT_PEM),
      b('hello'),
      b(''),
      b('{"kty":"RSA"}'),
      b('{"not":"a jwk"}'),
      b(JSON.stringify(rsa.privateKey.export({ format: 'jwk' }))),
      b('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'),
    ]
    for (const input of inputs)
      expect((await errorOf(parsePublicKey(input, 'x'))).code).toBe('ERR_CRYPT_KEY_INVALID')
  })

  it('refuses other key types with ERR_CRYPT_UNSUPPORTED', async () => {
    const ed = generateKeyPairSync('ed25519').publicKey
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey
    for (const k of [ed, k1]) {
      expect((await errorOf(parsePublicKey(b(k.export({ type: 'spki', format: 'pem' })), 'x'))).code).toBe(
        'ERR_CRYPT_UNSUPPORTED',
      )
    }
    expect((await errorOf(parsePublicKey(b(JSON.stringify(ed.export({ format: 'jwk' }))), 'x'))).code).toBe(
      'ERR_CRYPT_UNSUPPORTED',
    )
  })
})

describe('parsePrivateKey', () => {
  const rsaKey = rsa.privateKey
  const ecKey = p256.privateKey

  it('reads PKCS#8, PKCS#1 and SEC1 in PEM and DER, and private JWKs', async () => {
    const forms: [Buffer, KeyObject][] = [
      [b(rsaKey.export({ type: 'pkcs8', format: 'pem' })), rsaKey],
      [rsaKey.export({ type: 'pkcs8', format: 'der' }), rsaKey],
      [b(rsaKey.export({ type: 'pkcs1', format: 'pem' })), rsaKey],
      [rsaKey.export({ type: 'pkcs1', format: 'der' }), rsaKey],
      [b(ecKey.export({ type: 'pkcs8', format: 'pem' })), ecKey],
      [b(ecKey.export({ type: 'sec1', format: 'pem' })), ecKey],
      [ecKey.export({ type: 'sec1', format: 'der' }), ecKey],
      [b(JSON.stringify(rsaKey.export({ format: 'jwk' }))), rsaKey],
      [b(JSON.stringify(ecKey.export({ format: 'jwk' }))), ecKey],
    ]
    for (const [bytes, want] of forms)
      expect(same(await parsePrivateKey(bytes, undefined, 'k'), want)).toBe(true)
  })

  it('reads encrypted PKCS#8 (PEM and DER) and legacy encrypted PKCS#1 PEM with the password', async () => {
    const pw = b(PASSWORD)
    const encrypted = [
      b(rsaKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASSWORD })),
      rsaKey.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: PASSWORD }),
      b(rsaKey.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASSWORD })),
    ]
    expect(encrypted[2]!.toString()).toContain('Proc-Type: 4,ENCRYPTED')
    for (const bytes of encrypted) {
      expect(same(await parsePrivateKey(bytes, pw, 'enc.pem'), rsaKey)).toBe(true)
      const missing = await errorOf(parsePrivateKey(bytes, undefined, 'enc.pem'))
      expect(missing.code).toBe('ERR_CRYPT_KEY_INVALID')
      expect(missing.message).toContain('enc.pem')
      // An empty password is no password (DecryptConfig.privkeysPasswords).
      expect((await errorOf(parsePrivateKey(bytes, new Uint8Array(), 'enc.pem'))).code).toBe(
        'ERR_CRYPT_KEY_INVALID',
      )
      const wrong = await errorOf(parsePrivateKey(bytes, b('Tr0ub4dor&3'), 'enc.pem'))
      expect(wrong.code).toBe('ERR_CRYPT_KEY_INVALID')
      expect(wrong.message).toContain('enc.pem')
      expect(wrong.message).not.toContain('Tr0ub4dor')
      expect(wrong.cause).toBeUndefined()
    }
  })

  it('ignores a password an unencrypted key does not need', async () => {
    const pem = b(rsaKey.export({ type: 'pkcs8', format: 'pem' }))
    expect(same(await parsePrivateKey(pem, b('unneeded'), 'k'), rsaKey)).toBe(true)
  })

  it('returns undefined for what is no private key: certificates, public keys and JWKs, junk', async () => {
    const inputs = [
      b(CERT_PEM),
      CERT_DER,
      b(rsa.publicKey.export({ type: 'spki', format: 'pem' })),
      rsa.publicKey.export({ type: 'spki', format: 'der' }),
      b(JSON.stringify(rsa.publicKey.export({ format: 'jwk' }))),
      b('{"kty":"oct","k":"AAAA"}'),
      b('{"hello":1}'),
      b('{not json'),
      b('hello world'),
      b(''),
      Buffer.from([0x99, 0x01, 0x0d, 0x04]), // the start of a GPG keyring packet
    ]
    for (const input of inputs) expect(await parsePrivateKey(input, undefined, 'x')).toBeUndefined()
  })

  it('refuses a damaged private key block or JWK with ERR_CRYPT_KEY_INVALID', async () => {
    const broken = b('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
    expect((await errorOf(parsePrivateKey(broken, undefined, 'k'))).code).toBe('ERR_CRYPT_KEY_INVALID')
    const badJwk = b(JSON.stringify({ kty: 'RSA', n: 'AA', e: 'AQAB', d: 'AA' }))
    expect((await errorOf(parsePrivateKey(badJwk, undefined, 'k'))).code).toBe('ERR_CRYPT_KEY_INVALID')
  })

  it('returns keys of any type; keyKindOf tells which the wrappers can use', async () => {
    const ed = generateKeyPairSync('ed25519').privateKey
    const parsed = await parsePrivateKey(ed.export({ type: 'pkcs8', format: 'der' }), undefined, 'ed')
    expect(parsed?.asymmetricKeyType).toBe('ed25519')
    expect(keyKindOf(parsed!)).toBeUndefined()
    expect(keyKindOf(rsaKey)).toEqual({ kind: 'rsa' })
    expect(keyKindOf(createPublicKey(ecKey))).toEqual({ kind: 'ec', curve: 'P-256' })
    expect(keyKindOf(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey)).toBeUndefined()
  })
})

describe('parseDecryptionKeyArg', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-keys-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('splits file, file:pass=PW, file:PW; an empty password is none', async () => {
    expect(await parseDecryptionKeyArg('k.pem')).toEqual({ path: 'k.pem' })
    expect(await parseDecryptionKeyArg('k.pem:pass=s3cret')).toEqual({ path: 'k.pem', password: 's3cret' })
    expect(await parseDecryptionKeyArg('k.pem:pass=a=b')).toEqual({ path: 'k.pem', password: 'a=b' })
    expect(await parseDecryptionKeyArg('k.pem:s3cret')).toEqual({ path: 'k.pem', password: 's3cret' })
    expect(await parseDecryptionKeyArg('k.pem:')).toEqual({ path: 'k.pem' })
    expect(await parseDecryptionKeyArg('k.pem:pass=')).toEqual({ path: 'k.pem' })
  })

  it('reads file=PWFILE, dropping one trailing newline (LF or CRLF)', async () => {
    const cases: [string, string][] = [
      ['pw-lf', 'secret\n'],
      ['pw-crlf', 'secret\r\n'],
      ['pw-none', 'secret'],
      ['pw-two', 'secret\n\n'],
      ['pw-max', `${'x'.repeat(64)}\n`],
    ]
    for (const [name, content] of cases) await writeFile(join(dir, name), content)
    expect(await parseDecryptionKeyArg(`k.pem:file=${join(dir, 'pw-lf')}`)).toEqual({
      path: 'k.pem',
      password: 'secret',
    })
    expect((await parseDecryptionKeyArg(`k.pem:file=${join(dir, 'pw-crlf')}`)).password).toBe('secret')
    expect((await parseDecryptionKeyArg(`k.pem:file=${join(dir, 'pw-none')}`)).password).toBe('secret')
    expect((await parseDecryptionKeyArg(`k.pem:file=${join(dir, 'pw-two')}`)).password).toBe('secret\n')
    expect((await parseDecryptionKeyArg(`k.pem:file=${join(dir, 'pw-max')}`)).password).toBe('x'.repeat(64))
  })

  it('refuses password files over 64 bytes, missing ones, fd=, extra colons and provider: with ERR_CRYPT_KEY_INVALID', async () => {
    await writeFile(join(dir, 'pw-long'), 'y'.repeat(65))
    await writeFile(join(dir, 'pw-huge'), 'z'.repeat(10_000))
    const bad = [
      `k.pem:file=${join(dir, 'pw-long')}`,
      `k.pem:file=${join(dir, 'pw-huge')}`,
      `k.pem:file=${join(dir, 'absent')}`,
      'k.pem:file=',
      'k.pem:fd=3',
      ':s3cret',
      'provider:kbs',
    ]
    for (const arg of bad)
      expect((await errorOf(parseDecryptionKeyArg(arg))).code).toBe('ERR_CRYPT_KEY_INVALID')
    expect((await errorOf(parseDecryptionKeyArg('k.pem:fd=3'))).message).toContain('not supported')
    // ocicrypt would silently drop a password with ":"; we refuse it, without echoing it.
    const colon = await errorOf(parseDecryptionKeyArg('k.pem:pass=se:cret'))
    expect(colon.code).toBe('ERR_CRYPT_KEY_INVALID')
    expect(colon.message).not.toContain('cret')
  })
})

describe('generateKeyPair', () => {
  it('makes RSA keys (default 3072 bits) as PKCS#8 and PKIX PEM that parse back as a pair', async () => {
    const pair = await generateKeyPair('rsa')
    expect(pair.privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
    expect(pair.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/)
    const priv = await parsePrivateKey(b(pair.privatePem), undefined, 'gen')
    const pub = await parsePublicKey(b(pair.publicPem), 'gen')
    expect(priv?.asymmetricKeyDetails?.modulusLength).toBe(3072)
    expect(createPublicKey(priv!).equals(pub.key)).toBe(true)
    const small = await generateKeyPair('rsa', { bits: 2048 })
    expect(createPrivateKey(small.privatePem).asymmetricKeyDetails?.modulusLength).toBe(2048)
  })

  it('makes EC keys, P-256 by default', async () => {
    expect(await parsePublicKey(b((await generateKeyPair('ec')).publicPem), 'gen')).toMatchObject({
      curve: 'P-256',
    })
    expect(
      await parsePublicKey(b((await generateKeyPair('ec', { curve: 'P-521' })).publicPem), 'gen'),
    ).toMatchObject({
      curve: 'P-521',
    })
  })

  it('refuses other sizes, curves and types with ERR_INVALID_ARGUMENT', async () => {
    expect((await errorOf(generateKeyPair('rsa', { bits: 1024 }))).code).toBe('ERR_INVALID_ARGUMENT')
    expect((await errorOf(generateKeyPair('ec', { curve: 'secp256k1' as 'P-256' }))).code).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect((await errorOf(generateKeyPair('dsa' as 'rsa'))).code).toBe('ERR_INVALID_ARGUMENT')
  })
})
