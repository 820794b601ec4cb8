/** cosign's encrypted private key format and signatures (the Python peer check is in test/interop/sign-skopeo.test.ts). */
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  decryptCosignPrivateKey,
  encryptCosignPrivateKey,
  generateCosignKeyPair,
  readCosignPublicKey,
  signCosignPayload,
  verifyCosignSignature,
} from '../../../lib/sign/cosign-key.js'

/** The JSON inside the PEM, loosely typed so tests can corrupt any field. */
interface KeyDoc {
  kdf: { name: string; params: { N: number; r: number } }
  cipher: { name: string; nonce: string }
  ciphertext: string
}

const rewrap = (
  pem: string,
  edit: (doc: KeyDoc) => void,
  type = 'ENCRYPTED SIGSTORE PRIVATE KEY',
): string => {
  const body = pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('')
  const doc = JSON.parse(Buffer.from(body, 'base64').toString()) as KeyDoc
  edit(doc)
  return `-----BEGIN ${type}-----\n${Buffer.from(JSON.stringify(doc)).toString('base64')}\n-----END ${type}-----\n`
}

describe('cosign keys', () => {
  it('generate → decrypt → sign → verify with the public key', async () => {
    const { privatePem, publicPem } = await generateCosignKeyPair('pw')
    expect(privatePem).toMatch(/^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/)
    const key = await decryptCosignPrivateKey(privatePem, 'pw')
    const pub = readCosignPublicKey(Buffer.from(publicPem), 'cosign.pub')
    const sig = signCosignPayload(Buffer.from('payload'), key)
    expect(verifyCosignSignature(Buffer.from('payload'), sig, pub)).toBe(true)
    // image-rs and c/image tolerate line breaks in the base64 signature
    expect(verifyCosignSignature(Buffer.from('payload'), sig.replace(/(.{20})/, '$1\n'), pub)).toBe(true)
    expect(verifyCosignSignature(Buffer.from('payloaD'), sig, pub)).toBe(false)
    expect(verifyCosignSignature(Buffer.from('payload'), 'not base64!', pub)).toBe(false)
    expect(verifyCosignSignature(Buffer.from('payload'), '', pub)).toBe(false)
  })

  it('the empty password works (cosign allows it); a wrong one is ERR_SIGN_KEY_PASSWORD', async () => {
    const { privatePem } = await generateCosignKeyPair('')
    await decryptCosignPrivateKey(privatePem, '')
    await expect(decryptCosignPrivateKey(privatePem, 'x')).rejects.toMatchObject({
      code: 'ERR_SIGN_KEY_PASSWORD',
    })
  })

  it('reads the legacy PEM type and N=32768', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const pem = await encryptCosignPrivateKey(privateKey.export({ format: 'der', type: 'pkcs8' }), 'pw')
    const legacy = pem.replaceAll('ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY')
    const key = await decryptCosignPrivateKey(legacy, 'pw')
    expect(createPublicKey(key).export({ format: 'pem', type: 'spki' })).toEqual(
      createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }),
    )
  })

  it('refuses hostile or malformed key files with coded errors', async () => {
    const { privatePem } = await generateCosignKeyPair('pw')
    const cases: [string, string, string][] = [
      ['huge scrypt N', rewrap(privatePem, (d) => (d.kdf.params.N = 2 ** 24)), 'ERR_SIGN_KEY_INVALID'],
      ['other r', rewrap(privatePem, (d) => (d.kdf.params.r = 1)), 'ERR_SIGN_KEY_INVALID'],
      ['other kdf', rewrap(privatePem, (d) => (d.kdf.name = 'pbkdf2')), 'ERR_SIGN_KEY_INVALID'],
      ['other cipher', rewrap(privatePem, (d) => (d.cipher.name = 'aes')), 'ERR_SIGN_KEY_INVALID'],
      ['short nonce', rewrap(privatePem, (d) => (d.cipher.nonce = 'AAAA')), 'ERR_SIGN_KEY_INVALID'],
      [
        'tampered ciphertext',
        rewrap(privatePem, (d) => (d.ciphertext = Buffer.from('x'.repeat(150)).toString('base64'))),
        'ERR_SIGN_KEY_PASSWORD',
      ],
      ['wrong PEM type', privatePem.replaceAll('ENCRYPTED SIGSTORE', 'PLAIN'), 'ERR_SIGN_KEY_INVALID'],
      ['not PEM', 'hello', 'ERR_SIGN_KEY_INVALID'],
      [
        'JSON garbage',
        '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n',
        'ERR_SIGN_KEY_INVALID',
      ],
    ]
    for (const [name, pem, code] of cases) {
      await expect(decryptCosignPrivateKey(pem, 'pw'), name).rejects.toMatchObject({ code })
    }
  })

  it('public keys: PEM only, and only key types that can verify', () => {
    expect(() => readCosignPublicKey(Buffer.from('nope'), 'k')).toThrowError(
      expect.objectContaining({ code: 'ERR_SIGN_KEY_INVALID' }),
    )
    const { publicKey } = generateKeyPairSync('x25519')
    expect(() =>
      readCosignPublicKey(Buffer.from(publicKey.export({ format: 'pem', type: 'spki' })), 'k'),
    ).toThrowError(expect.objectContaining({ code: 'ERR_SIGN_KEY_INVALID' }))
  })
})
