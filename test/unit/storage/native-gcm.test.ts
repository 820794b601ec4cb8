/**
 * The native AES-256-GCM (native/gcm-blocks.c) against the node:crypto path it replaces: same
 * bytes out for the same nonces, same verdict on every stored block, tampered or not. The gocryptfs
 * interop tests then run the native path against the real gocryptfs.
 */
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CIPHER_BS,
  NONCE_LEN,
  PLAIN_BS,
  decryptBlocks,
  openBlocksJs,
  plainLength,
  sealBlocksJs,
} from '../../../lib/storage/content-cipher.js'
import { nativeGcm } from '../../../lib/storage/native-gcm.js'

const corrupt = expect.objectContaining({ code: 'ERR_STORAGE_CORRUPT' })
/** Largest block number a JS number holds exactly (the addon's bound too). */
const MAX_BLOCK_NO = Number.MAX_SAFE_INTEGER

/** The JS path's verdict: the plaintext, or 'corrupt'. */
function jsOpen(key: Buffer, stored: Buffer, first: number, fileId: Buffer | undefined): Buffer | 'corrupt' {
  try {
    return openBlocksJs(key, stored, first, fileId, Buffer.alloc(plainLength(stored.length)))
  } catch (err) {
    expect(err).toEqual(corrupt)
    return 'corrupt'
  }
}

/** The addon's verdict, in the same terms. */
function nativeOpen(
  key: Buffer,
  stored: Buffer,
  first: number,
  fileId: Buffer | undefined,
): Buffer | 'corrupt' {
  const out = Buffer.alloc(plainLength(stored.length))
  return native().open(key, stored, first, fileId ?? null, out) === -1 ? out : 'corrupt'
}

/** Buffer#equals: toEqual compares buffers element by element, for seconds. */
const same = (a: Buffer | 'corrupt', b: Buffer): boolean => a !== 'corrupt' && a.equals(b)

function native(): NonNullable<typeof nativeGcm> {
  if (!nativeGcm) throw new Error('native/build/gcm-blocks.node is missing: run npm run build')
  return nativeGcm
}

function sealBoth(key: Buffer, plain: Buffer, first: number, fileId: Buffer | undefined) {
  const n = Math.ceil(plain.length / PLAIN_BS)
  const nonces = randomBytes(n * NONCE_LEN)
  const js = Buffer.alloc(plain.length + n * (CIPHER_BS - PLAIN_BS))
  const nat = Buffer.alloc(js.length)
  sealBlocksJs(key, plain, first, fileId, nonces, js)
  native().seal(key, plain, first, fileId ?? null, nonces, nat)
  return { js, nat }
}

const cases = fc.record({
  length: fc.oneof(
    fc.integer({ min: 0, max: 5 * PLAIN_BS + 100 }),
    fc.constantFrom(PLAIN_BS - 1, PLAIN_BS, PLAIN_BS + 1),
  ),
  first: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 + 5 }), fc.constant(MAX_BLOCK_NO - 10)),
  withFileId: fc.boolean(),
})

describe('native AES-256-GCM blocks (native/gcm-blocks.c)', () => {
  it('is built and loads (npm run build compiles it)', () => {
    expect(nativeGcm).toBeDefined()
  })

  it('seals to the same bytes as node:crypto and each opens the other', () => {
    fc.assert(
      fc.property(cases, ({ length, first, withFileId }) => {
        const key = randomBytes(32)
        const fileId = withFileId ? randomBytes(16) : undefined
        const plain = randomBytes(length)
        const { js, nat } = sealBoth(key, plain, first, fileId)
        expect(nat.equals(js)).toBe(true)
        expect(same(nativeOpen(key, js, first, fileId), plain)).toBe(true)
        expect(same(jsOpen(key, nat, first, fileId), plain)).toBe(true)
        // decryptBlocks (the dispatcher the filesystem calls) agrees too.
        expect(decryptBlocks(key, nat, first, fileId).equals(plain)).toBe(true)
      }),
      { numRuns: 150 },
    )
  })

  it('any flipped bit, a wrong block number or file ID: both refuse, and decryptBlocks throws', () => {
    fc.assert(
      fc.property(cases, fc.nat(), fc.nat({ max: 7 }), ({ length, first, withFileId }, at, bit) => {
        fc.pre(length > 0)
        const key = randomBytes(32)
        const fileId = withFileId ? randomBytes(16) : undefined
        const { nat } = sealBoth(key, randomBytes(length), first, fileId)
        const flipped = Buffer.from(nat)
        flipped[at % flipped.length]! ^= 1 << bit
        expect(nativeOpen(key, flipped, first, fileId)).toBe('corrupt')
        expect(jsOpen(key, flipped, first, fileId)).toBe('corrupt')
        expect(() => decryptBlocks(key, flipped, first, fileId)).toThrow(corrupt)
        const other = first === MAX_BLOCK_NO - 10 ? first - 1 : first + 1
        expect(nativeOpen(key, nat, other, fileId)).toBe('corrupt')
        expect(nativeOpen(key, nat, first, randomBytes(16))).toBe('corrupt')
      }),
      { numRuns: 150 },
    )
  })

  it('reports the first block that fails, and blocks moved within a file fail', () => {
    const key = randomBytes(32)
    const fileId = randomBytes(16)
    const { nat } = sealBoth(key, randomBytes(4 * PLAIN_BS), 0, fileId)
    const swapped = Buffer.concat([
      nat.subarray(0, CIPHER_BS),
      nat.subarray(2 * CIPHER_BS, 3 * CIPHER_BS),
      nat.subarray(CIPHER_BS, 2 * CIPHER_BS),
      nat.subarray(3 * CIPHER_BS),
    ])
    expect(native().open(key, swapped, 0, fileId, Buffer.alloc(4 * PLAIN_BS))).toBe(1)
  })

  it('the edge rules match: holes, an all-zero nonce, short and all-zero partial blocks', () => {
    const key = randomBytes(32)
    const fileId = randomBytes(16)
    const { nat } = sealBoth(key, randomBytes(2 * PLAIN_BS + 100), 0, fileId)
    const zeroNonce = Buffer.from(nat)
    zeroNonce.fill(0, CIPHER_BS, CIPHER_BS + NONCE_LEN)
    const inputs: [string, Buffer][] = [
      [
        'a hole (full-size all-zero block)',
        Buffer.concat([Buffer.alloc(CIPHER_BS), nat.subarray(CIPHER_BS)]),
      ],
      ['an all-zero nonce', zeroNonce],
      ['an all-zero partial last block', Buffer.concat([nat.subarray(0, 2 * CIPHER_BS), Buffer.alloc(132)])],
      ['a last block of 32 bytes', Buffer.concat([nat.subarray(0, 2 * CIPHER_BS), nat.subarray(0, 32)])],
      ['a last block of 33 bytes', Buffer.concat([nat.subarray(0, 2 * CIPHER_BS), nat.subarray(0, 33)])],
      ['nothing', Buffer.alloc(0)],
    ]
    for (const [what, stored] of inputs) {
      const js = jsOpen(key, stored, 0, fileId)
      expect(nativeOpen(key, stored, 0, fileId), what).toEqual(js)
    }
    expect(nativeOpen(key, inputs[0]![1], 0, fileId)).not.toBe('corrupt')
    expect(nativeOpen(key, inputs[1]![1], 0, fileId)).toBe('corrupt')
  })

  it('bad arguments are a TypeError, never a crash or an out-of-bounds write', () => {
    const n = native()
    const key = randomBytes(32)
    const { nat } = sealBoth(key, randomBytes(PLAIN_BS), 0, undefined)
    const out = Buffer.alloc(PLAIN_BS)
    const calls: [string, () => unknown][] = [
      ['a 16-byte key', () => n.open(randomBytes(16), nat, 0, null, out)],
      ['a string', () => n.open(key, 'x' as unknown as Uint8Array, 0, null, out)],
      ['a negative block number', () => n.open(key, nat, -1, null, out)],
      ['a fractional block number', () => n.open(key, nat, 1.5, null, out)],
      ['a block number past 2^53', () => n.open(key, nat, 2 ** 53, null, out)],
      ['a 15-byte file ID', () => n.open(key, nat, 0, randomBytes(15), out)],
      ['a short output', () => n.open(key, nat, 0, null, Buffer.alloc(PLAIN_BS - 1))],
      ['overlapping input and output', () => n.open(key, nat, 0, null, nat.subarray(10))],
      ['a file ID inside the output', () => n.open(key, nat, 0, out.subarray(0, 16), out)],
      ['a key inside the output', () => n.open(out.subarray(0, 32), nat, 0, null, out)],
      [
        'too few nonces',
        () => n.seal(key, randomBytes(PLAIN_BS + 1), 0, null, randomBytes(16), Buffer.alloc(9000)),
      ],
      [
        'a short seal output',
        () => n.seal(key, randomBytes(PLAIN_BS), 0, null, randomBytes(16), Buffer.alloc(PLAIN_BS)),
      ],
      ['a Uint16Array', () => n.open(key, new Uint16Array(10) as unknown as Uint8Array, 0, null, out)],
      ['too few arguments', () => (n.open as (...a: unknown[]) => number)(key, nat, 0)],
    ]
    for (const [what, call] of calls) expect(call, what).toThrow(TypeError)
  })
})
