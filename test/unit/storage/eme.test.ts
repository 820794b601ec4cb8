import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { emeDecrypt, emeEncrypt } from '../../../lib/storage/eme.js'
import { isCofferError } from '../../../lib/util/errors.js'

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

describe('EME', () => {
  // Known answers: rfjakob/eme's published vectors for an all-zero key, tweak and 512-byte input
  // (TestEnc512 / TestDec512). Kept as first block, last block and SHA-256 of the whole output.
  it('matches the published all-zero 512-byte encryption vector', () => {
    const out = emeEncrypt(Buffer.alloc(32), Buffer.alloc(16), Buffer.alloc(512))
    expect(out.subarray(0, 16).toString('hex')).toBe('9f2e6c3daecae79e8839b0588ff378cd')
    expect(out.subarray(496).toString('hex')).toBe('ac209c2cd3cc577c28eedaafcedd89a6')
    expect(sha256(out)).toBe('7db861e039925bcce41a7dd1d8c3af62a4c114a0d906904929f6f2aadf11898f')
  })

  it('matches the published all-zero 512-byte decryption vector', () => {
    const out = emeDecrypt(Buffer.alloc(32), Buffer.alloc(16), Buffer.alloc(512))
    expect(out.subarray(0, 16).toString('hex')).toBe('080905dee8ebcc89f68bd1af635db3f5')
    expect(out.subarray(496).toString('hex')).toBe('3af804a5c9dab34420f260e4bd840829')
    expect(sha256(out)).toBe('2cf26c1331659aa00d5b8ea6b1d1111ee9d07eed733d858c6edbb512d1a5d4be')
  })

  it('decrypts what it encrypts for every length from 1 to 128 blocks', () => {
    const key = randomBytes(32)
    const tweak = randomBytes(16)
    for (let m = 1; m <= 128; m++) {
      const p = randomBytes(16 * m)
      const c = emeEncrypt(key, tweak, p)
      expect(c.length).toBe(p.length)
      expect(c.equals(p)).toBe(false)
      expect(emeDecrypt(key, tweak, c).equals(p)).toBe(true)
    }
  })

  it('is a wide-block cipher: one changed input byte changes every output block', () => {
    const key = randomBytes(32)
    const tweak = randomBytes(16)
    const p = randomBytes(64)
    const q = Buffer.from(p)
    q[63]! ^= 1
    const a = emeEncrypt(key, tweak, p)
    const b = emeEncrypt(key, tweak, q)
    for (let j = 0; j < 4; j++)
      expect(a.subarray(16 * j, 16 * j + 16).equals(b.subarray(16 * j, 16 * j + 16))).toBe(false)
  })

  it('depends on the tweak (the directory IV)', () => {
    const key = randomBytes(32)
    const p = randomBytes(32)
    expect(emeEncrypt(key, randomBytes(16), p).equals(emeEncrypt(key, randomBytes(16), p))).toBe(false)
  })

  it('refuses empty, unaligned and over-long input with a coded error', () => {
    const key = randomBytes(32)
    const t = randomBytes(16)
    for (const len of [0, 15, 17, 16 * 129])
      expect(() => emeEncrypt(key, t, Buffer.alloc(len))).toThrow(
        expect.objectContaining({ code: 'ERR_STORAGE_NAME_INVALID' }),
      )
    try {
      emeDecrypt(key, t, Buffer.alloc(3))
    } catch (err) {
      expect(isCofferError(err, 'ERR_STORAGE_NAME_INVALID')).toBe(true)
    }
  })
})
