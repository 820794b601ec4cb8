import { createDecipheriv, createCipheriv, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createKbsKeyWrapper, kbsKekEntry, KBS_KEKS } from '../../../../plugins/keywrap/kbs/index.js'

const opts = Buffer.from('{"symkey":"AAAA","digest":"sha256:00","cipheroptions":{"nonce":"AAAA"}}')
const kek = randomBytes(32)
const kid = 'kbs:///default/image-kek/app'
const config = (k: Buffer = kek, id = kid) => ({ [KBS_KEKS]: [kbsKekEntry(id, k)] })

describe('kbs key wrapper (CoCo attestation-agent AnnotationPacket)', () => {
  const w = createKbsKeyWrapper()

  it('writes the packet CDH reads, which a plain AES-256-GCM decryption opens (spec §2.4)', async () => {
    const wrapped = await w.wrapKeys(config(), opts)
    const packet = JSON.parse(Buffer.from(wrapped).toString()) as Record<string, string>
    expect(Object.keys(packet)).toEqual(['kid', 'wrapped_data', 'iv', 'wrap_type'])
    expect(packet.kid).toBe(kid)
    expect(packet.wrap_type).toBe('A256GCM')
    // As confidential-data-hub does it: ciphertext ‖ 16-byte tag, no AAD, 12-byte iv.
    const data = Buffer.from(packet.wrapped_data!, 'base64')
    expect(data.length).toBe(opts.length + 16)
    const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(packet.iv!, 'base64'))
    d.setAuthTag(data.subarray(-16))
    expect(Buffer.concat([d.update(data.subarray(0, -16)), d.final()])).toEqual(opts)
    expect(w.describeRecipients!(wrapped)).toEqual([`${kid} (KBS)`])
  })

  it('unwraps a packet made independently (as CoCo coco_keyprovider would)', async () => {
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', kek, iv)
    const data = Buffer.concat([c.update(opts), c.final(), c.getAuthTag()])
    const packet = Buffer.from(
      JSON.stringify({
        kid: 'kbs:///default/image-kek/app',
        wrapped_data: data.toString('base64'),
        iv: iv.toString('base64'),
        wrap_type: 'A256GCM',
      }),
    )
    expect(Buffer.from(await w.unwrapKey(config(), packet))).toEqual(opts)
  })

  it('a wrong KEK, a tampered packet or an unknown wrap type is the fixed failure; a missing KEK names the URI', async () => {
    const wrapped = await w.wrapKeys(config(), opts)
    await expect(w.unwrapKey(config(randomBytes(32)), wrapped)).rejects.toMatchObject({
      code: 'ERR_CRYPT_DECRYPT_FAILED',
      message: 'decryption failed',
    })
    const p = JSON.parse(Buffer.from(wrapped).toString()) as Record<string, string>
    const flipped = Buffer.from(p.wrapped_data!, 'base64')
    flipped[3] = flipped[3]! ^ 1
    for (const bad of [
      { ...p, wrapped_data: flipped.toString('base64') },
      { ...p, wrap_type: 'A256CTR' },
      { ...p, iv: 'AAAA' },
    ]) {
      await expect(w.unwrapKey(config(), Buffer.from(JSON.stringify(bad)))).rejects.toMatchObject({
        code: 'ERR_CRYPT_DECRYPT_FAILED',
      })
    }
    await expect(w.unwrapKey(config(kek, 'kbs:///default/image-kek/other'), wrapped)).rejects.toMatchObject({
      code: 'ERR_CRYPT_NO_KEY',
      message: expect.stringContaining(kid),
    })
    await expect(w.unwrapKey(config(), Buffer.from('not json'))).rejects.toMatchObject({
      code: 'ERR_CRYPT_OPTIONS_INVALID',
    })
    await expect(
      w.unwrapKey(config(), Buffer.from(JSON.stringify({ ...p, provider: 'aliyun' }))),
    ).rejects.toMatchObject({ code: 'ERR_CRYPT_UNSUPPORTED' })
  })

  it('refuses KEKs that are not 32 bytes, and more than one KEK per image', async () => {
    expect(() => kbsKekEntry(kid, randomBytes(16))).toThrow(
      expect.objectContaining({ code: 'ERR_CRYPT_KEY_INVALID' }),
    )
    const two = { [KBS_KEKS]: [kbsKekEntry(kid, kek), kbsKekEntry('kbs:///a/b/c', kek)] }
    await expect(w.wrapKeys(two, opts)).rejects.toMatchObject({ code: 'ERR_CRYPT_RECIPIENT_INVALID' })
    expect(w.noPossibleKeys({})).toBe(true)
    expect(w.hasRecipients(config())).toBe(true)
  })
})
