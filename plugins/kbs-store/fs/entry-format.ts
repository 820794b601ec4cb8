/**
 * The bytes of one `fs` store file: a fixed 21-byte header, then the value.
 *
 * ```
 * offset  size  field
 *      0     4  magic "ckv" 0x01 (format version 1)
 *      4     1  flags: bit 0 = the entry expires
 *      5     8  expiresAt, epoch milliseconds, signed big-endian (0 when bit 0 is clear)
 *     13     8  value length, unsigned big-endian
 *     21     n  value
 * ```
 *
 * The expiry travels with the value, so one rename replaces both together. The length field turns a
 * truncated or padded file (something other than this store wrote it) into ERR_KBS_STORE_CORRUPT
 * instead of a silently different value; integrity against an attacker is the `sealed` store's job.
 */
import { CofferError } from '../../../lib/util/errors.js'

const MAGIC = Buffer.from([0x63, 0x6b, 0x76, 0x01])
const FLAG_EXPIRES = 0x01
export const ENTRY_HEADER_BYTES = 21

export interface Entry {
  value: Buffer
  expiresAt?: number
}

export function encodeEntry(value: Uint8Array, expiresAt: number | undefined): Buffer {
  const header = Buffer.alloc(ENTRY_HEADER_BYTES)
  MAGIC.copy(header, 0)
  header.writeUInt8(expiresAt === undefined ? 0 : FLAG_EXPIRES, 4)
  header.writeBigInt64BE(BigInt(expiresAt ?? 0), 5)
  header.writeBigUInt64BE(BigInt(value.byteLength), 13)
  return Buffer.concat([header, value])
}

/** Parses a whole file; anything but exactly one well-formed entry is ERR_KBS_STORE_CORRUPT. */
export function decodeEntry(bytes: Buffer, what: string): Entry {
  const { expiresAt } = decodeHeader(bytes, bytes.length, what)
  const value = bytes.subarray(ENTRY_HEADER_BYTES)
  return expiresAt === undefined ? { value } : { value, expiresAt }
}

/** Checks a header (the file's first bytes) against the file's size; returns the expiry. */
export function decodeHeader(header: Buffer, fileSize: number, what: string): { expiresAt?: number } {
  if (header.length < ENTRY_HEADER_BYTES || !header.subarray(0, 4).equals(MAGIC)) {
    throw new CofferError('ERR_KBS_STORE_CORRUPT', `${what}: not a store entry`)
  }
  const flags = header.readUInt8(4)
  if ((flags & ~FLAG_EXPIRES) !== 0) throw new CofferError('ERR_KBS_STORE_CORRUPT', `${what}: unknown flags`)
  if (header.readBigUInt64BE(13) !== BigInt(fileSize - ENTRY_HEADER_BYTES)) {
    throw new CofferError('ERR_KBS_STORE_CORRUPT', `${what}: length does not match the file`)
  }
  return flags & FLAG_EXPIRES ? { expiresAt: Number(header.readBigInt64BE(5)) } : {}
}
