import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  CIPHER_BS,
  PLAIN_BS,
  cipherSize,
  decryptBlock,
  encryptBlock,
  newFileHeader,
  parseFileHeader,
  plainSize,
} from '../../../lib/storage/content-cipher.js'

const corrupt = expect.objectContaining({ code: 'ERR_STORAGE_CORRUPT' })

describe('file sizes', () => {
  it('maps plaintext to backing sizes as gocryptfs 2.3 does (sizes measured on its backing files)', () => {
    const measured: [number, number][] = [
      [0, 0],
      [1, 51],
      [5, 55],
      [4096, 4146],
      [5000, 5082],
      [10000, 10114],
      [12299, 12445],
    ]
    for (const [plain, cipher] of measured) {
      expect(cipherSize(plain)).toBe(cipher)
      expect(plainSize(cipher)).toBe(plain)
    }
  })

  it('inverts for every size across three blocks', () => {
    for (let p = 0; p < 3 * PLAIN_BS + 5; p++) expect(plainSize(cipherSize(p))).toBe(p)
  })

  it('counts a header-only file as empty and a too-short trailing fragment as 1 byte', () => {
    expect(plainSize(18)).toBe(0)
    expect(plainSize(10)).toBe(0)
    expect(plainSize(18 + 20)).toBe(1)
    expect(plainSize(18 + CIPHER_BS + 32)).toBe(PLAIN_BS + 1)
  })
})

describe('file header', () => {
  it('is version 2 and a random 16-byte file ID', () => {
    const h = newFileHeader()
    expect(h.bytes.readUInt16BE(0)).toBe(2)
    expect(parseFileHeader(h.bytes)).toEqual(h.fileId)
  })

  it('refuses another version, an all-zero ID and a truncated header', () => {
    const v3 = newFileHeader().bytes
    v3.writeUInt16BE(3, 0)
    const zero = Buffer.alloc(18)
    zero.writeUInt16BE(2, 0)
    for (const h of [v3, zero, Buffer.alloc(18), newFileHeader().bytes.subarray(0, 17)])
      expect(() => parseFileHeader(h)).toThrow(corrupt)
  })
})

describe('blocks', () => {
  const key = randomBytes(32)
  const id = randomBytes(16)

  it('are nonce16 ‖ ciphertext ‖ tag16 with a fresh nonce each time', () => {
    const p = randomBytes(PLAIN_BS)
    const a = encryptBlock(key, p, 3, id)
    const b = encryptBlock(key, p, 3, id)
    expect(a.length).toBe(CIPHER_BS)
    expect(a.equals(b)).toBe(false)
    expect(decryptBlock(key, a, 3, id)).toEqual(p)
    expect(encryptBlock(key, Buffer.alloc(0), 0, id).length).toBe(0)
  })

  it('are bound to their block number and file ID', () => {
    const c = encryptBlock(key, randomBytes(100), 7, id)
    expect(() => decryptBlock(key, c, 8, id)).toThrow(corrupt)
    expect(() => decryptBlock(key, c, 7, randomBytes(16))).toThrow(corrupt)
    expect(() => decryptBlock(randomBytes(32), c, 7, id)).toThrow(corrupt)
  })

  it('detect any flipped byte', () => {
    const c = encryptBlock(key, randomBytes(300), 0, id)
    for (const i of [0, 15, 16, 100, c.length - 1]) {
      const t = Buffer.from(c)
      t[i]! ^= 0x40
      expect(() => decryptBlock(key, t, 0, id)).toThrow(corrupt)
    }
  })

  it('read a full-size all-zero block as a hole, but refuse a shorter zero block or a zero nonce', () => {
    expect(decryptBlock(key, Buffer.alloc(CIPHER_BS), 5, id)).toEqual(Buffer.alloc(PLAIN_BS))
    expect(() => decryptBlock(key, Buffer.alloc(100), 5, id)).toThrow(corrupt)
    const c = encryptBlock(key, randomBytes(50), 0, id)
    c.fill(0, 0, 16)
    expect(() => decryptBlock(key, c, 0, id)).toThrow(corrupt)
  })

  it('refuse blocks too short to hold data or longer than a block', () => {
    for (const len of [1, 32, CIPHER_BS + 1])
      expect(() => decryptBlock(key, randomBytes(len), 0, id)).toThrow(corrupt)
  })
})
