import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { NameCipher, checkPlainName, isLongName, isLongNameFile } from '../../../lib/storage/names.js'
import { emeEncrypt } from '../../../lib/storage/eme.js'
import { pad16, unpad16 } from '../../../lib/storage/pad16.js'
import { decodeRaw64, encodeRaw64 } from '../../../lib/storage/raw64.js'

const code = (code: string) => expect.objectContaining({ code })

describe('pad16', () => {
  it('always adds 1..16 bytes (a 16-byte name grows to 32)', () => {
    expect(pad16(Buffer.alloc(1)).length).toBe(16)
    expect(pad16(Buffer.alloc(15)).length).toBe(16)
    expect(pad16(Buffer.alloc(16))).toEqual(Buffer.concat([Buffer.alloc(16), Buffer.alloc(16, 16)]))
    for (let n = 1; n < 40; n++) expect(unpad16(pad16(Buffer.alloc(n, 0x61))).length).toBe(n)
  })

  it('rejects malformed padding', () => {
    const bad = [
      Buffer.alloc(0),
      Buffer.alloc(15, 1),
      Buffer.alloc(16, 0),
      Buffer.alloc(16, 17),
      Buffer.alloc(16, 16),
    ]
    const mixed = Buffer.alloc(16, 3)
    mixed[14] = 2
    for (const b of [...bad, mixed]) expect(() => unpad16(b)).toThrow(code('ERR_STORAGE_NAME_INVALID'))
  })
})

describe('Raw64', () => {
  it('is base64url without padding', () => {
    expect(encodeRaw64(Buffer.from([0xfb, 0xff]))).toBe('-_8')
    expect(decodeRaw64('-_8')).toEqual(Buffer.from([0xfb, 0xff]))
  })

  it('refuses every non-canonical spelling, so one name has one ciphertext', () => {
    for (const s of ['-_8=', '+/8', '-_9', 'a', 'AAAA\n', 'AA AA', 'AA.A'])
      expect(() => decodeRaw64(s)).toThrow(code('ERR_STORAGE_NAME_INVALID'))
  })
})

describe('NameCipher', () => {
  // Fixed key and IV: the corrupt-name cases below must fail the same way on every run.
  const names = new NameCipher(Buffer.alloc(32, 1))
  const iv = Buffer.alloc(16, 2)

  it('round-trips names, including multi-byte UTF-8', () => {
    for (const n of ['a', 'hello.txt', 'x'.repeat(255), 'ünïcødé ✓', 'gocryptfs.conf', '-_'])
      expect(names.decrypt(names.encrypt(n, iv).encoded, iv)).toBe(n)
  })

  it('stores names up to 175 bytes as is and hashes longer ones (255-character limit)', () => {
    const short = names.encrypt('x'.repeat(175), iv)
    expect(short.long).toBe(false)
    expect(short.encoded.length).toBe(235)
    const long = names.encrypt('x'.repeat(176), iv)
    expect(long.long).toBe(true)
    expect(long.backing).toMatch(/^gocryptfs\.longname\.[A-Za-z0-9_-]{43}$/)
    expect(isLongName(long.backing)).toBe(true)
    expect(isLongNameFile(`${long.backing}.name`)).toBe(true)
    expect(NameCipher.longNameMatches(long.backing, long.encoded)).toBe(true)
    expect(NameCipher.longNameMatches(long.backing, `${long.encoded}A`)).toBe(false)
  })

  it('remembers encrypted names without changing any: same results as a fresh cipher, per IV', () => {
    const key = randomBytes(32)
    const cached = new NameCipher(key)
    const ivs = [randomBytes(16), randomBytes(16), Buffer.alloc(16)]
    // Three passes over 5,000 names (more than it keeps): hits, misses and evictions all agree.
    for (let pass = 0; pass < 3; pass++)
      for (let i = 0; i < 5000; i += pass === 1 ? 7 : 1) {
        const name = i % 97 === 0 ? 'y'.repeat(170 + (i % 50)) : `file-${i}.txt`
        const dirIV = ivs[i % ivs.length]!
        expect(cached.encrypt(name, dirIV)).toEqual(new NameCipher(key).encrypt(name, dirIV))
      }
    // The same name under another directory's IV is another ciphertext.
    expect(cached.encrypt('a', ivs[0]!).encoded).not.toBe(cached.encrypt('a', ivs[1]!).encoded)
    // A bad name is refused every time, never remembered.
    for (let k = 0; k < 2; k++) {
      expect(() => cached.encrypt('a/b', ivs[0]!)).toThrow(code('ERR_STORAGE_NAME_INVALID'))
      expect(() => cached.encrypt('n'.repeat(256), ivs[0]!)).toThrow(code('ERR_STORAGE_NAME_TOO_LONG'))
    }
    cached.clear()
    expect(cached.encrypt('file-1.txt', ivs[1]!)).toEqual(new NameCipher(key).encrypt('file-1.txt', ivs[1]!))
  })

  it('honours a LongNameMax below 255', () => {
    const n = new NameCipher(randomBytes(32), 62)
    expect(n.encrypt('x'.repeat(47), iv).long).toBe(true)
    expect(n.encrypt('x'.repeat(31), iv).long).toBe(false)
  })

  it('encrypts the same name differently in different directories', () => {
    expect(names.encrypt('same', randomBytes(16)).encoded).not.toBe(
      names.encrypt('same', randomBytes(16)).encoded,
    )
  })

  it('refuses invalid plaintext names', () => {
    for (const n of ['', '.', '..', 'a/b', 'nul\0'])
      expect(() => names.encrypt(n, iv)).toThrow(code('ERR_STORAGE_NAME_INVALID'))
    expect(() => checkPlainName('x'.repeat(256))).toThrow(code('ERR_STORAGE_NAME_TOO_LONG'))
  })

  it('refuses a name whose bytes are not UTF-8 instead of returning it altered', () => {
    const latin1 = encodeRaw64(emeEncrypt(Buffer.alloc(32, 1), iv, pad16(Buffer.from('caf\xe9', 'latin1'))))
    expect(() => names.decrypt(latin1, iv)).toThrow(/not valid UTF-8/)
  })

  it('refuses forged or corrupt ciphertext names with a coded error', () => {
    const good = names.encrypt('file', iv).encoded
    const flipped = (good[0] === 'A' ? 'B' : 'A') + good.slice(1)
    // A flipped character (or another directory's IV) decrypts to garbage with bad padding.
    for (const s of [flipped, 'AAAA', `${good}=`, 'not base64!'])
      expect(() => names.decrypt(s, iv)).toThrow(code('ERR_STORAGE_NAME_INVALID'))
    expect(() => names.decrypt(good, Buffer.alloc(16, 3))).toThrow(code('ERR_STORAGE_NAME_INVALID'))
  })
})
