import { createCipheriv, createHmac, randomBytes } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  parsePrivateOptions,
  parsePublicOptions,
  serializePrivateOptions,
  serializePublicOptions,
} from '../../../lib/crypt/block-cipher-options.js'
import { createLayerDecryptor, createLayerEncryptor } from '../../../lib/crypt/layer-cipher.js'
import { decryptedMediaType, encryptedMediaType } from '../../../lib/crypt/media-types.js'
import { digestOf } from '../../../lib/oci/digest.js'

async function run(chunks: Buffer[], transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = []
  await pipeline(
    Readable.from(chunks),
    transform,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c)
        cb()
      },
    }),
  )
  return Buffer.concat(out)
}

describe('ocicrypt layer cipher (AES_256_CTR_HMAC_SHA256)', () => {
  it('matches the definition: AES-256-CTR from the nonce as counter, HMAC-SHA256 over the ciphertext', async () => {
    const plain = randomBytes(70_000)
    const enc = createLayerEncryptor(digestOf(plain))
    const cipher = await run([plain.subarray(0, 12_345), plain.subarray(12_345)], enc.stream)
    const { privateOptions: priv, publicOptions: pub } = enc.options()
    const nonce = priv.cipherOptions.nonce!
    const expected = createCipheriv('aes-256-ctr', priv.symkey, nonce).update(plain)
    expect(cipher.equals(expected)).toBe(true)
    expect(pub.hmac.equals(createHmac('sha256', priv.symkey).update(cipher).digest())).toBe(true)
    expect(pub.cipher).toBe('AES_256_CTR_HMAC_SHA256')
    expect(priv.digest).toBe(digestOf(plain))
  })

  it('decrypts what it encrypts, however the stream is cut', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 5000 }), { maxLength: 8 }), async (parts) => {
        const chunks = parts.map((p) => Buffer.from(p))
        const plain = Buffer.concat(chunks)
        const enc = createLayerEncryptor(digestOf(plain))
        const cipher = await run(chunks, enc.stream)
        expect(cipher.length).toBe(plain.length)
        const { privateOptions, publicOptions } = enc.options()
        expect((await run([cipher], createLayerDecryptor(privateOptions, publicOptions))).equals(plain)).toBe(
          true,
        )
      }),
      { numRuns: 30 },
    )
  })

  it('a flipped ciphertext bit, a wrong key or a wrong HMAC fails at EOF with the fixed message', async () => {
    const plain = randomBytes(10_000)
    const enc = createLayerEncryptor(digestOf(plain))
    const cipher = await run([plain], enc.stream)
    const { privateOptions, publicOptions } = enc.options()
    const flipped = Buffer.from(cipher)
    flipped[5000] = flipped[5000]! ^ 1
    const failures = [
      run([flipped], createLayerDecryptor(privateOptions, publicOptions)),
      run([cipher], createLayerDecryptor({ ...privateOptions, symkey: randomBytes(32) }, publicOptions)),
      run([cipher], createLayerDecryptor(privateOptions, { ...publicOptions, hmac: randomBytes(32) })),
      run([cipher.subarray(0, 9000)], createLayerDecryptor(privateOptions, publicOptions)),
    ]
    for (const f of failures)
      await expect(f).rejects.toMatchObject({
        code: 'ERR_CRYPT_DECRYPT_FAILED',
        message: 'decryption failed',
      })
    expect(() => createLayerDecryptor(privateOptions, { ...publicOptions, cipher: 'ROT13' })).toThrow(
      expect.objectContaining({ code: 'ERR_CRYPT_UNSUPPORTED' }),
    )
  })
})

describe('cipher options, as Go marshals them', () => {
  it('private options are byte-exact: symkey, digest, cipheroptions (193 bytes for sha256)', () => {
    const p = {
      symkey: Buffer.alloc(32, 1),
      digest: digestOf('x'),
      cipherOptions: { nonce: Buffer.alloc(16, 2) },
    }
    const json = serializePrivateOptions(p).toString()
    expect(json).toBe(
      `{"symkey":"${Buffer.alloc(32, 1).toString('base64')}","digest":"${digestOf('x')}","cipheroptions":{"nonce":"${Buffer.alloc(16, 2).toString('base64')}"}}`,
    )
    expect(json.length).toBe(193)
    expect(parsePrivateOptions(Buffer.from(json))).toEqual(p)
  })

  it('public options round-trip through the annotation, and bad ones are refused', () => {
    const pub = { cipher: 'AES_256_CTR_HMAC_SHA256', hmac: Buffer.alloc(32, 3), cipherOptions: {} }
    const annotation = serializePublicOptions(pub).toString('base64')
    expect(Buffer.from(annotation, 'base64').toString()).toBe(
      `{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"${Buffer.alloc(32, 3).toString('base64')}","cipheroptions":{}}`,
    )
    expect(parsePublicOptions(annotation, 'layer')).toEqual(pub)
    for (const bad of [
      '%%%',
      Buffer.from('not json').toString('base64'),
      Buffer.from('{"cipher":""}').toString('base64'),
    ]) {
      expect(() => parsePublicOptions(bad, 'layer')).toThrow(
        expect.objectContaining({ code: 'ERR_CRYPT_OPTIONS_INVALID' }),
      )
    }
  })

  it('malformed private options are a plain decryption failure', () => {
    for (const bad of [
      'nope',
      '{}',
      '{"symkey":"AAAA"}',
      `{"symkey":"${Buffer.alloc(32).toString('base64')}","digest":"md5:x"}`,
    ]) {
      expect(() => parsePrivateOptions(Buffer.from(bad))).toThrow(
        expect.objectContaining({ code: 'ERR_CRYPT_DECRYPT_FAILED' }),
      )
    }
  })

  it('media types gain and lose +encrypted; Docker layers become OCI', () => {
    expect(encryptedMediaType('application/vnd.oci.image.layer.v1.tar+gzip')).toBe(
      'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
    )
    expect(encryptedMediaType('application/vnd.docker.image.rootfs.diff.tar.gzip')).toBe(
      'application/vnd.oci.image.layer.v1.tar+gzip+encrypted',
    )
    expect(encryptedMediaType('application/vnd.oci.image.layer.v1.tar+zstd+encrypted')).toBe(
      'application/vnd.oci.image.layer.v1.tar+zstd+encrypted',
    )
    expect(decryptedMediaType('application/vnd.oci.image.layer.v1.tar+encrypted')).toBe(
      'application/vnd.oci.image.layer.v1.tar',
    )
  })
})
