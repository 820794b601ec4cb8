import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { flattenedDecrypt } from 'jose'
import { describe, expect, it } from 'vitest'
import type { TeePubKey } from '../../../lib/kbs/protocol.js'
import { encryptResource } from '../../../lib/kbs/resource-jwe.js'

function teeKey(kind: 'P-256' | 'P-521' | 'RSA'): { pub: TeePubKey; priv: KeyObject } {
  if (kind === 'RSA') {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const j = publicKey.export({ format: 'jwk' })
    return { pub: { kty: 'RSA', alg: 'RSA-OAEP-256', n: j.n!, e: j.e! }, priv: privateKey }
  }
  const { publicKey, privateKey } = generateKeyPairSync('ec', {
    namedCurve: kind === 'P-256' ? 'prime256v1' : 'secp521r1',
  })
  const j = publicKey.export({ format: 'jwk' })
  return { pub: { kty: 'EC', crv: kind, alg: 'ECDH-ES+A256KW', x: j.x!, y: j.y! }, priv: privateKey }
}

/** What kbs-types `generate_aad` does on the guest: re-serialize the parsed header (alg, enc, then sorted). */
function guestReserialized(protectedB64: string): string {
  const h = JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8')) as Record<string, unknown>
  const sortDeep = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]),
        )
      : v
  const { alg, enc, ...rest } = h
  const ordered = { alg, enc, ...(sortDeep(rest) as object) }
  return Buffer.from(JSON.stringify(ordered)).toString('base64url')
}

describe('KBS resource JWE', () => {
  it.each(['P-256', 'P-521', 'RSA'] as const)(
    '%s: decrypts with jose and keeps the guest-side AAD identical',
    async (kind) => {
      const { pub, priv } = teeKey(kind)
      const secret = Buffer.from('a resource: 32 bytes of key here')
      const jwe = encryptResource(secret, pub)
      expect(Object.keys(jwe).sort()).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag'])
      for (const v of Object.values(jwe)) expect(v).toMatch(/^[A-Za-z0-9_-]*$/)
      expect(Buffer.from(jwe.iv, 'base64url').length).toBe(12)
      expect(Buffer.from(jwe.tag, 'base64url').length).toBe(16)
      const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >
      expect(header.alg).toBe(pub.alg)
      expect(header.enc).toBe('A256GCM')
      if (pub.kty === 'EC') {
        expect(Object.keys(header.epk as object)).toEqual(['crv', 'kty', 'x', 'y'])
        expect(Buffer.from(jwe.encrypted_key, 'base64url').length).toBe(40)
        const coord = kind === 'P-521' ? 66 : 32
        expect(Buffer.from((header.epk as { x: string }).x, 'base64url').length).toBe(coord)
      }
      expect(guestReserialized(jwe.protected)).toBe(jwe.protected)
      const { plaintext } = await flattenedDecrypt(
        jwe,
        createPrivateKey(priv.export({ format: 'pem', type: 'pkcs8' })),
      )
      expect(Buffer.from(plaintext)).toEqual(secret)
    },
  )

  it('a fresh CEK and IV every time', () => {
    const { pub } = teeKey('P-256')
    const a = encryptResource(Buffer.from('x'), pub)
    const b = encryptResource(Buffer.from('x'), pub)
    expect(a.iv).not.toBe(b.iv)
    expect(a.encrypted_key).not.toBe(b.encrypted_key)
  })

  it('refuses a point that is not on the curve and a short RSA key', () => {
    expect(() =>
      encryptResource(Buffer.from('x'), { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'AQ', y: 'Ag' }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CRYPT_KEY_INVALID' }))
    const offCurve = Buffer.alloc(32, 1).toString('base64url')
    expect(() =>
      encryptResource(Buffer.from('x'), {
        kty: 'EC',
        crv: 'P-256',
        alg: 'ECDH-ES+A256KW',
        x: offCurve,
        y: offCurve,
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CRYPT_KEY_INVALID' }))
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const j = publicKey.export({ format: 'jwk' })
    expect(() =>
      encryptResource(Buffer.from('x'), { kty: 'RSA', alg: 'RSA-OAEP-256', n: j.n!, e: j.e! }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CRYPT_KEY_INVALID' }))
  })
})
