/**
 * RSAES-PKCS1-v1_5 decryption (RFC 8017 §7.2.2) with implicit rejection, for the pkcs7 key
 * wrapper's key transport (spec §1.6).
 *
 * Why not `crypto.privateDecrypt` with RSA_PKCS1_PADDING: Node 20 refuses it (CVE-2023-46809, the
 * "Marvin" timing attack). So the RSA operation runs raw (RSA_NO_PADDING) and the padding check is
 * done here, without branching on secret data, and with implicit rejection as in
 * draft-irtf-cfrg-rsa-guidance and OpenSSL 3.2: a bad padding (or a message of the wrong length)
 * does not fail, it yields a pseudo-random key derived from the private key and the ciphertext.
 * The same ciphertext always yields the same wrong key, so a caller cannot tell padding failures
 * apart from a wrong key; the AES-GCM tag check that follows rejects both the same way.
 *
 * JavaScript gives no constant-time guarantee; the code avoids data-dependent branches and
 * indexing on the decrypted block, which is the best a JIT allows.
 */
import { constants, createHash, createHmac, privateDecrypt, type KeyObject } from 'node:crypto'

/** PS must be at least 8 bytes: EM = 0x00 || 0x02 || PS (≥ 8 nonzero) || 0x00 || M. */
const MIN_PADDING_BYTES = 8
/** Domain separation for the implicit-rejection key derivation. */
const REJECTION_LABEL = 'coffer pkcs7 rsaes-pkcs1-v1_5 implicit rejection'

/**
 * Decrypts `ciphertext` with `key` and returns a message of exactly `messageLength` bytes: the
 * real one if the padding is valid and the message has that length, else a pseudo-random one
 * derived from the key and the ciphertext (implicit rejection). Throws only on failures that
 * depend on public data alone: a non-RSA key, or a ciphertext longer than the modulus or not
 * smaller than it (OpenSSL's range check); the caller turns those into its fixed failure.
 */
export function rsaDecryptPkcs1v15(key: KeyObject, ciphertext: Uint8Array, messageLength: number): Buffer {
  if (key.asymmetricKeyType !== 'rsa') throw new Error('not an RSA key')
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  const k = Math.ceil(bits / 8)
  if (ciphertext.byteLength > k || k < messageLength + MIN_PADDING_BYTES + 3) {
    throw new Error('ciphertext does not fit the key')
  }
  // I2OSP: a ciphertext with leading zero bytes may arrive shorter than k (Go accepts that too).
  const c = Buffer.alloc(k)
  c.set(ciphertext, k - ciphertext.byteLength)
  const em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, c)
  const fallback = rejectionMessage(key, c, messageLength)
  try {
    return unpadPkcs1v15(em, messageLength, fallback)
  } finally {
    em.fill(0)
  }
}

/**
 * The EME-PKCS1-v1_5 decoding step on an encoded block `em` (k bytes, as RSA decryption returns
 * it). Returns M if `em` is `00 02 PS 00 M` with PS at least 8 nonzero bytes and M of exactly
 * `messageLength` bytes; otherwise a copy of `fallback` (which must be `messageLength` bytes).
 * Runs the same steps whatever `em` holds: no early return, no branch on its bytes.
 */
export function unpadPkcs1v15(em: Uint8Array, messageLength: number, fallback: Uint8Array): Buffer {
  if (fallback.byteLength !== messageLength) throw new Error('fallback length differs from messageLength')
  const k = em.byteLength
  if (k < messageLength + MIN_PADDING_BYTES + 3) throw new Error('encoded block too short')
  // good is 1 while the block is valid, 0 once any check fails; all arithmetic stays in int32.
  let good = isZero(em[0]!) & isZero(em[1]! ^ 0x02)
  // The separator must sit exactly where a messageLength-byte M starts, and every byte of PS
  // before it must be nonzero. With M's length fixed, this needs no search for the first zero.
  const sep = k - messageLength - 1
  good &= isZero(em[sep]!)
  for (let i = 2; i < sep; i++) good &= 1 ^ isZero(em[i]!)
  // PS length is sep - 2 ≥ MIN_PADDING_BYTES by the size check above, independent of em.
  const mask = -good & 0xff // 0xff when good, 0x00 otherwise
  const out = Buffer.alloc(messageLength)
  for (let j = 0; j < messageLength; j++) {
    out[j] = (em[sep + 1 + j]! & mask) | (fallback[j]! & ~mask & 0xff)
  }
  return out
}

/** 1 if b is 0, else 0, for a byte b, without a branch. */
function isZero(b: number): number {
  return ((b - 1) >>> 31) & 1
}

/**
 * The implicit-rejection message: HMAC-SHA-256 keyed with a secret derived from the private key
 * (a hash of its PKCS#8 encoding, never stored or shown), over the ciphertext, cut to length.
 */
function rejectionMessage(key: KeyObject, c: Buffer, messageLength: number): Buffer {
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' })
  const kdk = createHash('sha256').update(REJECTION_LABEL).update(pkcs8).digest()
  pkcs8.fill(0)
  const out = Buffer.alloc(messageLength)
  for (let block = 0, filled = 0; filled < messageLength; block++) {
    const t = createHmac('sha256', kdk)
      .update(Buffer.from([block]))
      .update(c)
      .digest()
    filled += t.copy(out, filled)
  }
  kdk.fill(0)
  return out
}
