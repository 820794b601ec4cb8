/** OpenPGP simple-signing blobs: round trip, and keys that gpgme would refuse today. */
import { generateKey, readKey, revokeKey } from 'openpgp'
import { describe, expect, it } from 'vitest'
import {
  createSimpleSignature,
  readPublicKeyrings,
  readSigningKey,
  verifySimpleSignature,
} from '../../../lib/sign/simple-signing.js'

const PAYLOAD = Buffer.from('{"critical":{}}')

describe('simple signing', () => {
  it('sign → verify returns the payload and the primary key fingerprint', async () => {
    const { privateKey, publicKey } = await generateKey({
      userIDs: [{ email: 'a@example.com' }],
      format: 'armored',
    })
    const key = await readSigningKey(Buffer.from(privateKey), undefined, 'a.asc')
    const blob = await createSimpleSignature(PAYLOAD, key)
    const keys = await readPublicKeyrings([Buffer.from(publicKey)], 'a.pub')
    const out = await verifySimpleSignature(blob, keys)
    expect(Buffer.from(out.payload).equals(PAYLOAD)).toBe(true)
    expect(out.signer).toBe(key.getFingerprint().toUpperCase())
  })

  it('passphrase-protected keys need the right passphrase', async () => {
    const { privateKey } = await generateKey({
      userIDs: [{ email: 'p@example.com' }],
      passphrase: 'pw',
      format: 'armored',
    })
    await expect(readSigningKey(Buffer.from(privateKey), undefined, 'p.asc')).rejects.toMatchObject({
      code: 'ERR_SIGN_KEY_PASSWORD',
    })
    await expect(readSigningKey(Buffer.from(privateKey), 'nope', 'p.asc')).rejects.toMatchObject({
      code: 'ERR_SIGN_KEY_PASSWORD',
    })
    await readSigningKey(Buffer.from(privateKey), 'pw', 'p.asc')
  })

  it('a key that expired after signing is refused (gpgme judges validity now)', async () => {
    const { privateKey, publicKey } = await generateKey({
      userIDs: [{ email: 'e@example.com' }],
      keyExpirationTime: 1,
      format: 'object',
    })
    const blob = await createSimpleSignature(PAYLOAD, privateKey)
    await new Promise((r) => setTimeout(r, 1500))
    await expect(verifySimpleSignature(blob, [publicKey])).rejects.toMatchObject({
      code: 'ERR_SIGN_SIGNATURE_INVALID',
    })
  })

  it('a key revoked after signing is refused', async () => {
    const { privateKey, publicKey } = await generateKey({
      userIDs: [{ email: 'r@example.com' }],
      format: 'object',
    })
    const blob = await createSimpleSignature(PAYLOAD, privateKey)
    await verifySimpleSignature(blob, [publicKey])
    const { publicKey: revoked } = await revokeKey({ key: privateKey, format: 'armored' })
    await expect(verifySimpleSignature(blob, [await readKey({ armoredKey: revoked })])).rejects.toMatchObject(
      {
        code: 'ERR_SIGN_SIGNATURE_INVALID',
      },
    )
  })

  it('keyrings that are not keyrings are ERR_SIGN_KEY_INVALID', async () => {
    await expect(readPublicKeyrings([Buffer.from('junk')], 'k')).rejects.toMatchObject({
      code: 'ERR_SIGN_KEY_INVALID',
    })
    await expect(readPublicKeyrings([new Uint8Array()], 'k')).rejects.toMatchObject({
      code: 'ERR_SIGN_KEY_INVALID',
    })
  })
})
