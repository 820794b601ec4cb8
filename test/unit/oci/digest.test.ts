import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Writable } from 'node:stream'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  digestOf,
  isDigest,
  parseDigest,
  verifyBytes,
  verifyingStream,
  type Digest,
} from '../../../lib/oci/digest.js'

async function drain(source: Readable, transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c)
      cb()
    },
  })
  await pipeline(source, transform, sink)
  return Buffer.concat(chunks)
}

describe('digests', () => {
  it('parses sha256 and sha512, lowercase hex of the right length only', () => {
    expect(parseDigest(`sha256:${'a'.repeat(64)}`).algorithm).toBe('sha256')
    expect(parseDigest(`sha512:${'b'.repeat(128)}`).algorithm).toBe('sha512')
    for (const bad of [
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'a'.repeat(63)}`,
      `sha512:${'a'.repeat(64)}`,
      `md5:${'a'.repeat(32)}`,
      'sha256',
      ':abc',
      '',
    ]) {
      expect(isDigest(bad)).toBe(false)
      expect(() => parseDigest(bad)).toThrow(expect.objectContaining({ code: 'ERR_OCI_DIGEST_INVALID' }))
    }
  })

  it('digestOf agrees with node:crypto for both algorithms', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (data) => {
        expect(digestOf(data)).toBe(`sha256:${createHash('sha256').update(data).digest('hex')}`)
        expect(digestOf(data, 'sha512')).toBe(`sha512:${createHash('sha512').update(data).digest('hex')}`)
      }),
    )
  })

  it('a verifying stream passes matching content through, however it is chunked', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.constantFrom('sha256', 'sha512' as const),
        async (chunks, alg) => {
          const whole = Buffer.concat(chunks)
          const out = await drain(
            Readable.from(chunks.map((c) => Buffer.from(c))),
            verifyingStream(digestOf(whole, alg), whole.length),
          )
          expect(out.equals(whole)).toBe(true)
        },
      ),
    )
  })

  it.each([
    ['other content', Buffer.from('tampered'), undefined, 'ERR_OCI_DIGEST_MISMATCH'],
    ['a short body', Buffer.from('hello'), 11, 'ERR_OCI_SIZE_MISMATCH'],
    ['a long body', Buffer.from('hello world!!'), 11, 'ERR_OCI_SIZE_MISMATCH'],
  ])('fails on %s', async (_name, body, size, code) => {
    const expected: Digest = digestOf('hello world')
    await expect(drain(Readable.from([body]), verifyingStream(expected, size))).rejects.toMatchObject({
      code,
    })
  })

  it('stops an endless body as soon as it passes the expected size', async () => {
    let sent = 0
    const endless = new Readable({
      read() {
        sent += 65536
        this.push(Buffer.alloc(65536))
      },
    })
    await expect(drain(endless, verifyingStream(digestOf('x'), 100_000))).rejects.toMatchObject({
      code: 'ERR_OCI_SIZE_MISMATCH',
    })
    expect(sent).toBeLessThan(1_000_000)
  })

  it('verifyBytes names what failed', () => {
    expect(() => verifyBytes(Buffer.from('a'), digestOf('b'), 'config')).toThrow(/config digest/)
  })
})
