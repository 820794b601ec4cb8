import { CofferError } from '../util/errors.js'

/**
 * Base64url without padding (RFC 4648 §5), gocryptfs's `Raw64` encoding of names, long-name hashes
 * and symlink targets. Decoding is strict, as gocryptfs's is: one plaintext has exactly one
 * ciphertext spelling, so non-canonical input (padding, stray bits, other alphabets, CR/LF) fails.
 */
const RAW64 = /^[A-Za-z0-9_-]*$/

export function encodeRaw64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64url')
}

/** Throws ERR_STORAGE_NAME_INVALID unless `text` is canonical unpadded base64url. */
export function decodeRaw64(text: string): Buffer {
  if (!RAW64.test(text) || text.length % 4 === 1)
    throw new CofferError('ERR_STORAGE_NAME_INVALID', 'not canonical base64url')
  const data = Buffer.from(text, 'base64url')
  // Node ignores trailing bits; re-encoding catches a non-zero remainder.
  if (data.toString('base64url') !== text)
    throw new CofferError('ERR_STORAGE_NAME_INVALID', 'not canonical base64url')
  return data
}
