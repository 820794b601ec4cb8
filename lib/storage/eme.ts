import { createCipheriv, createDecipheriv } from 'node:crypto'
import { CofferError } from '../util/errors.js'

/**
 * EME (ECB-Mix-ECB), the Halevi–Rogaway wide-block cipher gocryptfs uses for file names
 * (rfjakob/eme). Every output bit depends on every input bit and on the 16-byte tweak (the
 * directory IV), so equal names in different directories encrypt differently and a changed byte
 * anywhere changes the whole ciphertext. Hand-written: no npm package implements EME.
 *
 * AES-256 single key; input is 1..128 blocks of 16 bytes. Decryption runs the same three layers with
 * AES decryption, but the L table is always made with AES *encryption* (as in the reference).
 */
const BLOCK = 16
const MAX_BLOCKS = 128

/** Multiplication by 2 in GF(2^128) with EME's little-endian byte order (x^128 + x^7 + x^2 + x + 1). */
function times2(b: Uint8Array): Buffer {
  const out = Buffer.alloc(BLOCK)
  out[0] = (b[0]! << 1) & 0xff
  if (b[15]! & 0x80) out[0]! ^= 0x87
  for (let j = 1; j < BLOCK; j++) out[j] = ((b[j]! << 1) & 0xff) | (b[j - 1]! >> 7)
  return out
}

function xorInto(dst: Buffer, dstOff: number, a: Uint8Array, aOff: number): void {
  for (let i = 0; i < BLOCK; i++) dst[dstOff + i]! ^= a[aOff + i]!
}

/** AES-256-ECB over whole blocks; ECB without padding is stateless per block, so one call does many. */
function ecb(key: Uint8Array, decrypt: boolean, data: Buffer): Buffer {
  const c = decrypt ? createDecipheriv('aes-256-ecb', key, null) : createCipheriv('aes-256-ecb', key, null)
  c.setAutoPadding(false)
  return Buffer.concat([c.update(data), c.final()])
}

function transform(key: Uint8Array, tweak: Uint8Array, input: Uint8Array, decrypt: boolean): Buffer {
  if (key.length !== 32) throw new CofferError('ERR_INTERNAL', 'EME needs a 32-byte key')
  if (tweak.length !== BLOCK) throw new CofferError('ERR_INTERNAL', 'EME tweak must be 16 bytes')
  const m = input.length / BLOCK
  if (!Number.isInteger(m) || m < 1 || m > MAX_BLOCKS)
    throw new CofferError('ERR_STORAGE_NAME_INVALID', 'EME input must be 1..128 blocks of 16 bytes')

  // L_0 = 2·E(0), L_j = 2·L_{j-1}
  const L: Buffer[] = []
  let li: Buffer = ecb(key, false, Buffer.alloc(BLOCK))
  for (let j = 0; j < m; j++) {
    li = times2(li)
    L.push(li)
  }

  // First ECB layer: PPP_j = F(P_j ⊕ L_j)
  const pp = Buffer.from(input)
  for (let j = 0; j < m; j++) xorInto(pp, j * BLOCK, L[j]!, 0)
  const c = ecb(key, decrypt, pp)

  // Mix: MP = T ⊕ ⊕PPP_j, MC = F(MP), M = MP ⊕ MC
  const mp = Buffer.from(tweak)
  for (let j = 0; j < m; j++) xorInto(mp, 0, c, j * BLOCK)
  const mc = ecb(key, decrypt, mp)
  let mask: Buffer = Buffer.from(mp)
  xorInto(mask, 0, mc, 0)
  for (let j = 1; j < m; j++) {
    mask = times2(mask)
    xorInto(c, j * BLOCK, mask, 0)
  }
  // CCC_0 = MC ⊕ T ⊕ CCC_1 ⊕ … ⊕ CCC_{m-1}
  const ccc0 = Buffer.from(mc)
  xorInto(ccc0, 0, tweak, 0)
  for (let j = 1; j < m; j++) xorInto(ccc0, 0, c, j * BLOCK)
  ccc0.copy(c, 0)

  // Second ECB layer: C_j = F(CCC_j) ⊕ L_j
  const out = ecb(key, decrypt, c)
  for (let j = 0; j < m; j++) xorInto(out, j * BLOCK, L[j]!, 0)
  return out
}

export function emeEncrypt(key: Uint8Array, tweak: Uint8Array, plaintext: Uint8Array): Buffer {
  return transform(key, tweak, plaintext, false)
}

export function emeDecrypt(key: Uint8Array, tweak: Uint8Array, ciphertext: Uint8Array): Buffer {
  return transform(key, tweak, ciphertext, true)
}
